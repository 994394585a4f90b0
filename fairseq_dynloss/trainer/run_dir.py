"""The run folder of ``dynloss-train``: one run at a time, and nothing in it touched before the
decision to run.

* ``locked(folder)``: an exclusive ``flock`` on ``FOLDER/.dynloss-train.lock`` for the whole run
  (rank 0 of a ``torchrun`` job holds it for all ranks and children). A second run in the folder
  is refused at once, naming the process that holds it. The kernel drops the lock when its
  process ends, however it ends, so a killed run never leaves the folder locked.
* ``prepare(...)``: the start decision -- fresh / ``resume=true`` / ``overwrite=true`` -- made
  from the folder as it is; a resume is refused when any setting differs from the checkpoint's,
  except those in ``RESUME_MAY_CHANGE``, naming each difference. Only then the folder is
  changed: ``overwrite=true`` removes the previous run's files (``RUN_FILES``, so the new run
  starts from an empty folder), the temporary files of killed writes are removed, and Hydra's
  ``.hydra/`` files are written (Hydra itself is told not to: ``hydra.output_subdir: null``).
"""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from fairseq_dynloss.atomic_save import atomic_write, remove_stale_temporaries

from .checkpoint import load_checkpoint
from .registry import ConfigError
from .setting_diff import setting_differences

log = logging.getLogger("dynloss-train")

LOCK_FILE = ".dynloss-train.lock"
# Settings a resume may change: where and how the job runs, not what it computes. task.epochs
# may grow (the saved scheduler keeps the milestones / cosine period of the original run).
RESUME_MAY_CHANGE = ("resume", "overwrite", "stop_after_epoch", "progress", "tensorboard",
                     "checkpoint_interval_s", "plot_every", "device", "data_dir", "task.epochs")
# What a run writes into its folder (overwrite=true removes exactly these): the loop's, the L2T
# teacher's, the ALA controller's files, TensorBoard events, multi-network children, .hydra/.
RUN_FILES = ("config.yaml", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt", "curves.png",
             "phi.png", "phi_offdiag.png", "ala_log.csv", "ala_controller.pt", "teacher.pt",
             "teacher_log.csv", "teacher_checkpoint.pt", "teacher_trajectory.pt", "teacher_states.csv",
             "label_noise.csv", "teacher.png", "ala.png",
             "events.out.tfevents.*", "child[0-9]*", ".hydra")
PHASE_A_FILES = ("teacher_checkpoint.pt", "teacher.pt")


class RunFolderBusy(RuntimeError):
    """Another run holds the run folder's lock."""


@contextmanager
def locked(folder: str, rank: Optional[int] = None) -> Iterator[None]:
    """Hold ``folder``'s run lock (created if needed) inside the block; only rank 0 of a
    ``torchrun`` job (``RANK``) takes it. Raises RunFolderBusy at once if another run holds it."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    if rank != 0:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunFolderBusy(
                f"{folder} is in use by another dynloss-train run (process {holder}, lock {path}); "
                "wait for it to finish or choose another hydra.run.dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the file releases the lock


def prepare(cfg: DictConfig, out_dir: str, device: torch.device, writes: bool) -> Optional[Dict[str, Any]]:
    """Decide how the run starts, then (``writes``: this process writes the folder) clean the
    folder. Returns the checkpoint to resume from (loaded onto ``device``), or None.

    Raises:
        FileExistsError: a checkpoint exists and neither resume nor overwrite is set.
        FileNotFoundError: ``resume=true`` without a checkpoint (the message says what survives).
        ConfigError: a resume whose settings differ from the checkpoint's, or a bad checkpoint.
    """
    last_path = os.path.join(out_dir, "checkpoint_last.pt")
    exists = os.path.exists(last_path)
    if exists and not cfg.resume and not cfg.overwrite:
        raise FileExistsError(
            f"{last_path} exists; pass resume=true to continue that run, overwrite=true to start "
            "again in the same folder, or choose another hydra.run.dir")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("resume=true and overwrite=true contradict each other; pass one of them")
    if cfg.resume and not exists:
        raise FileNotFoundError(no_checkpoint_message(out_dir, last_path, cfg.checkpoint_interval_s))
    state = None
    if cfg.resume:
        state = load_checkpoint(last_path, device)
        differences = resume_differences(state["config"], cfg)
        if differences:
            raise ConfigError(
                f"resume=true: {last_path} was trained with other settings: {'; '.join(differences)}. "
                f"Only {', '.join(RESUME_MAY_CHANGE)} may change on resume (task.epochs only grow); "
                "pass the run's own settings, or overwrite=true to start again")
    if writes:
        if cfg.overwrite:
            removed = clear_run_files(out_dir, keep=_read_paths(cfg))
            if removed:
                log.info("overwrite=true: removed the previous run's %s", ", ".join(removed))
        for path in remove_stale_temporaries(out_dir):
            log.info("removed %s, left by an interrupted write", path)
        write_hydra_files(out_dir, cfg)
    return state


def resume_differences(saved_yaml: str, cfg: DictConfig) -> List[str]:
    """``"key: saved -> now"`` for every setting that differs between a checkpoint's config and
    ``cfg`` (dotted keys; list values compared whole), except ``RESUME_MAY_CHANGE``."""
    saved = OmegaConf.to_container(OmegaConf.create(saved_yaml), resolve=True)
    return setting_differences(saved, OmegaConf.to_container(cfg, resolve=True), _may_change_on_resume)


def _may_change_on_resume(key: str, old: Any, new: Any) -> bool:
    if key == "task.epochs":  # may only grow
        return isinstance(old, int) and isinstance(new, int) and new >= old
    return key in RESUME_MAY_CHANGE


def no_checkpoint_message(out_dir: str, last_path: str, interval) -> str:
    """Why ``resume=true`` cannot continue, and what of the killed run survives."""
    message = f"resume=true but there is no checkpoint at {last_path}"
    phase_a = [name for name in PHASE_A_FILES if os.path.exists(os.path.join(out_dir, name))]
    if phase_a:
        message += (f". The L2T teacher's phase (a) left {', '.join(phase_a)}: run again without "
                    "resume=true and teacher training continues from it")
    if os.path.exists(os.path.join(out_dir, "metrics.csv")):
        message += (f". metrics.csv holds epochs of a run killed before its first checkpoint "
                    f"(checkpoints are written every checkpoint_interval_s={interval} s and after the "
                    "last epoch): those epochs are lost, a run without resume=true starts the student "
                    "again (checkpoint_interval_s=0 checkpoints every epoch)")
    return message


def clear_run_files(out_dir: str, keep: List[str] = ()) -> List[str]:
    """Remove what a previous run wrote into ``out_dir`` (``RUN_FILES``), except the paths in
    ``keep`` (files this run reads). Returns the removed names."""
    keep = {os.path.realpath(path) for path in keep}
    removed = []
    for pattern in RUN_FILES:
        for path in sorted(glob.glob(os.path.join(glob.escape(out_dir), pattern))):
            if os.path.realpath(path) in keep or any(k.startswith(os.path.realpath(path) + os.sep) for k in keep):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(os.path.basename(path))
    return removed


def _read_paths(cfg: DictConfig) -> List[str]:
    """Files the run reads (a teacher or controller file may live in the run folder)."""
    paths = [OmegaConf.select(cfg, key) for key in ("teacher.path", "controller.policy_path",
                                                    "model.pretrained_path", "loss.phi_init",
                                                    "task.label_noise.matrix")]
    return [os.path.expanduser(p) for p in paths if isinstance(p, str) and p]


def write_hydra_files(out_dir: str, cfg: DictConfig) -> None:
    """``.hydra/config.yaml``, ``overrides.yaml`` and ``hydra.yaml`` of this run (what Hydra
    writes itself with an ``output_subdir``), after the decision to run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = os.path.join(out_dir, ".hydra")
    files = {"config.yaml": OmegaConf.to_yaml(cfg),
             "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hydra_cfg.overrides.task))),
             "hydra.yaml": OmegaConf.to_yaml({"hydra": hydra_cfg})}
    for name, text in files.items():
        atomic_write(os.path.join(folder, name), lambda tmp, text=text: Path(tmp).write_text(text))
