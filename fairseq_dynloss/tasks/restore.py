"""The task state of the checkpoint that ``fairseq-train`` resumes from.

fairseq's trainer saves ``task.state_dict()`` in every checkpoint (``task_state``) but does not
restore it when resuming training, so tasks with state of their own (a teacher, a controller)
read it themselves, from the file ``checkpoint_utils.load_checkpoint`` would pick.
"""

import os
from typing import Optional


def restore_task_state(cfg) -> Optional[dict]:
    """``task_state`` of ``cfg.restore_file`` (``checkpoint_last.pt`` in ``cfg.save_dir`` by
    default), or None when there is no file to resume from or the optimizer state is reset."""
    from fairseq import checkpoint_utils

    path = cfg.restore_file
    if path == "checkpoint_last.pt":
        path = os.path.join(cfg.save_dir, path)
    if cfg.reset_optimizer or not os.path.isfile(path):
        return None
    return checkpoint_utils.load_checkpoint_to_cpu(path).get("task_state", {})
