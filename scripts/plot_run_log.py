"""Draw what a teacher or controller did from its CSV log (fairseq_dynloss.trainer.log_plots).

    python scripts/plot_run_log.py work/teacher/teacher_log.csv work/teacher/teacher.png
    python scripts/plot_run_log.py work/ala/ala_log.csv work/ala/ala.png

teacher_log.csv (dynloss-train teacher=l2t, or --task translation_l2t): dev objective,
hypergradient norm, skipped steps; ala_log.csv (controller=ala, or --task translation_ala):
reward, policy entropy, actions, validation metric, controlled values. dynloss-train draws them
into the run folder itself (teacher.png, ala.png).
"""

from fairseq_dynloss.trainer.log_plots import main

if __name__ == "__main__":
    main()
