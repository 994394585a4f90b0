"""Phi_t rows over training (what scripts/plot_phi.py draws) and the script itself."""

import subprocess
import sys
from pathlib import Path

import torch

from fairseq_dynloss.losses import build_phi
from fairseq_dynloss.teacher import StudentState, build_teacher, save_teacher
from fairseq_dynloss.teacher.trajectory import phi_rows_over_training

REPO = Path(__file__).resolve().parents[2]


def test_rows_follow_the_teacher_along_progress():
    teacher = build_teacher("gated", "bucketed", 8, num_buckets=2, init_std=0.5, seed=3)
    phi = build_phi("bucketed", 8, counts=list(range(8, 0, -1)), num_buckets=2)
    rows = phi_rows_over_training(teacher, phi, [1, 5], steps=3)
    assert rows.shape == (3, 2, 8)
    # The middle point: progress 0.5, training loss halfway between log 8 and 0.1 log 8.
    log_c = torch.log(torch.tensor(8.0)).item()
    state = StudentState(num_updates=500, horizon=1000, train_loss=log_c - 0.45 * log_c)
    phi.load_tensors(teacher(state.features(8)))
    torch.testing.assert_close(rows[1], phi.materialize()[[1, 5]])
    assert not torch.allclose(rows[0], rows[2])  # Phi_t changes with the state


def test_plot_phi_script_writes_a_png(tmp_path):
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i, word in enumerate(["▁a", "▁b", "▁c", "▁d"]):
        dictionary.add_symbol(word, n=10 - i)
    dictionary.save(str(tmp_path / "dict.txt"))
    teacher = build_teacher("gated", "bucketed", len(dictionary), num_buckets=2, init_std=0.3)
    save_teacher(teacher, str(tmp_path / "teacher.pt"), horizon=10)
    (tmp_path / "log.csv").write_text("teacher_step,update,dev_objective,hypergrad_norm,skipped\n"
                                      "1,2,0.1,1.0,0\n2,5,0.2,0.5,0\n")
    proc = subprocess.run([sys.executable, str(REPO / "scripts/plot_phi.py"), "--teacher", str(tmp_path / "teacher.pt"),
                           "--dict", str(tmp_path / "dict.txt"), "--tokens", "▁a,▁c", "--log", str(tmp_path / "log.csv"),
                           "--steps", "5", "--out", str(tmp_path / "phi.png")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "phi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, str(REPO / "scripts/plot_phi.py"), "--teacher", str(tmp_path / "teacher.pt"),
                          "--dict", str(tmp_path / "dict.txt"), "--tokens", "▁zzz", "--out", str(tmp_path / "x.png")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "not in" in bad.stderr


def test_plot_phi_run_mode_draws_a_runs_phi_snapshots(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    snapshots = {0: torch.eye(3), 5: torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.6, 0.4], [0.4, 0.0, 0.6]])}
    torch.save({"phi_snapshots": snapshots}, run / "checkpoint_last.pt")
    (run / "label_noise.csv").write_text("true,noisy_0,noisy_1,noisy_2\n0,6,4,0\n1,0,6,4\n2,4,0,6\n")
    (run / "teacher_states.csv").write_text("update,phi_diag_mean,phi_offdiag_absmean\n0,1.0,0.0\n1,0.8,0.1\n")
    out = tmp_path / "phi.png"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_phi.py"), "--run", str(run), "--out",
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_phi.py"), "--run", str(tmp_path),
                              "--out", str(out)], capture_output=True, text=True)
    assert missing.returncode != 0 and "checkpoint_last.pt does not exist" in missing.stderr
