"""``--task translation_l2t``: train an L2T-DLF teacher inside ``fairseq-train``.

Use with ``--criterion dynamic_loss`` (its Phi parametrisation and scale are the student's loss).
At every update the teacher sets the criterion's Phi from the live student state. Teacher steps
(``fairseq_dynloss.teacher.TeacherLearner``) unroll a *functional copy* of the student T steps
over the T most recent training batches -- by default with the student's own optimiser
(``--inner-optimizer twin``, ``tasks/fairseq_twin.py``: fairseq's sgd or adam with its
hyper-parameters, moments, ``--clip-norm`` and the learning rates of those T updates) -- score
the development objective (``--teacher-dev-objective``: minus the NLL per token, the expected
token accuracy or the expected BLEU of candidates sampled from the unrolled student; dropout
off; ``tasks/l2t_dev_objective.py``) on a fixed random subset of the validation split (``--teacher-dev-batches`` x
``--teacher-dev-max-sentences`` sentences drawn with ``--seed``), and update theta by the
hypergradient:

* ``--teacher-mode episodic`` (the paper): the real student is never updated; every T fairseq
  updates one teacher step starts from the same omega_0 (the initial weights, or those given by
  ``--finetune-from-model``). ``--max-update`` = T x the number of teacher steps.
* ``--teacher-mode online``: the real student trains normally with the current teacher; every
  ``--teacher-interval`` updates a teacher step starts from its live weights.

Data parallelism and ``--update-freq``: a teacher step unrolls one functional student per
micro-batch stream -- stream j takes the j-th micro-batch of each of the last T updates, on every
rank -- and theta follows the mean of their hypergradients (all-reduced across ranks). The
student-state feature ``train_loss`` is the NLL per token of whole updates (summed over
micro-batches and ranks). So W ranks x ``--update-freq`` F give the same teacher as any other
split of the same W x F micro-batches, e.g. 1 rank x ``--update-freq`` W x F. The teacher step's
memory grows with F (the streams of one rank are unrolled together).

The teacher is exported to ``--teacher-save`` (default ``SAVE_DIR/teacher.pt``) after every step
and each step is appended to ``SAVE_DIR/teacher_log.csv``; use the file with
``--criterion dynamic_loss --phi-source teacher --teacher-path``.

Both loss forms: with ``--dynamic-form prob`` the teacher outputs a non-negative Phi by construction
(``teacher/prob_tensors.py``; full, diag_lowrank or bucketed with the per-bucket mean semantics).

Maths in ``fairseq_dynloss/teacher`` and ``hypergrad``; this file is the fairseq adapter.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
import contextlib
import copy
import csv
import logging
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from fairseq import distributed_utils, utils
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from ..criterions.dynamic_loss import DynamicLossCriterion
from ..hypergrad import FunctionalModule
from ..losses import PhiError, dynamic_loss
from ..teacher import (
    TEACHERS, StudentState, StudentStateTracker, TeacherLearner, build_teacher, load_teacher, save_teacher,
)
from ..teacher.learner import inner_optimizer
from .dev_subset import random_dev_subset
from .fairseq_twin import fairseq_twin
from .l2t_dev_objective import (
    DEV_OBJECTIVES, BleuOptions, BoundStudent, check_dev_objective, dev_objective, sample_candidates,
)
from .restore import restore_task_state

logger = logging.getLogger(__name__)


@dataclass
class TranslationL2TConfig(TranslationConfig):
    teacher_mode: ChoiceEnum(["episodic", "online"]) = field(
        default="episodic", metadata={"help": "episodic: teacher steps from the same initial student "
                                      "(the paper); online: from the live student every --teacher-interval updates"})
    teacher_kind: ChoiceEnum(sorted(TEACHERS)) = field(
        default="gated", metadata={"help": "gated: Phi_0 + sum_k h_k(s) Phi_k; bilinear: I + E M(s) E^T"})
    teacher_gates: int = field(default=4, metadata={"help": "K, state-dependent components"})
    teacher_hidden: int = field(default=32, metadata={"help": "width of the teacher's state MLP"})
    teacher_init: Optional[str] = field(default=None, metadata={"help": "start from this teacher file"})
    teacher_seed: int = field(default=1, metadata={"help": "seed of the teacher's initialisation"})
    teacher_lr: float = field(default=1e-3, metadata={"help": "Adam learning rate on theta"})
    teacher_clip_norm: float = field(default=1.0, metadata={"help": "clip the hypergradient norm (0: off)"})
    unroll_steps: int = field(default=5, metadata={"help": "T, student updates unrolled per teacher step"})
    teacher_interval: int = field(default=50, metadata={"help": "online mode: updates between teacher steps"})
    inner_optimizer: ChoiceEnum(["twin", "sgd", "adam"]) = field(
        default="twin", metadata={"help": "optimiser of the unrolled (functional) student: twin, the student's "
                                  "own (--optimizer sgd or adam with its betas, eps, weight decay, moments, "
                                  "--clip-norm and the scheduler's rates of the buffered updates; any other "
                                  "--optimizer is refused); sgd / adam: a fresh one with --inner-lr"})
    inner_lr: Optional[float] = field(
        default=None, metadata={"help": "learning rate of --inner-optimizer sgd / adam (default 1e-3)"})
    inner_momentum: float = field(default=0.0, metadata={"help": "momentum of --inner-optimizer sgd"})
    hypergrad_checkpoint: int = field(
        default=0, metadata={"help": "hypergradient memory: keep every k-th state and recompute (0: keep all)"})
    hypergrad_truncate: int = field(
        default=0, metadata={"help": "differentiate through the last K unrolled steps only (0: all T)"})
    teacher_dev_objective: ChoiceEnum(list(DEV_OBJECTIVES)) = field(
        default="nll", metadata={"help": "what the teacher maximises at the end of an unroll: nll (minus the "
                                 "NLL per token), token_accuracy (mean p(y_t)) or expected_bleu (E_q[sentence "
                                 "BLEU] over candidates sampled from the unrolled student); teacher-forced, on "
                                 "the dev subset"})
    teacher_dev_batches: int = field(
        default=2, metadata={"help": "batches of the dev subset (drawn at random with --seed)"})
    teacher_dev_max_sentences: int = field(default=32, metadata={"help": "sentences per dev batch"})
    teacher_bleu_candidates: int = field(
        default=4, metadata={"help": "expected_bleu: candidates sampled per dev source"})
    teacher_bleu_alpha: float = field(
        default=1.0, metadata={"help": "expected_bleu: sharpness alpha of q = softmax(alpha log p(y|x))"})
    teacher_bleu_include_reference: bool = field(
        default=False, metadata={"help": "expected_bleu: add the reference to each candidate set"})
    teacher_save: Optional[str] = field(
        default=None, metadata={"help": "where to export the teacher (default SAVE_DIR/teacher.pt)"})
    teacher_horizon: int = field(
        default=0, metadata={"help": "updates that progress t/T = 1 stands for (0: --max-update)"})
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    reset_optimizer: bool = II("checkpoint.reset_optimizer")
    valid_subset: str = II("dataset.valid_subset")
    max_update: int = II("optimization.max_update")
    lr: List[float] = II("optimization.lr")
    seed: int = II("common.seed")
    clip_norm: float = II("optimization.clip_norm")


@register_task("translation_l2t", dataclass=TranslationL2TConfig)
class TranslationL2TTask(TranslationTask):
    """Translation whose ``train_step`` also trains an L2T-DLF teacher (see module docstring)."""

    cfg: TranslationL2TConfig

    def __init__(self, cfg: TranslationL2TConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        for name in ("unroll_steps", "teacher_interval", "teacher_dev_batches", "teacher_dev_max_sentences",
                     "teacher_bleu_candidates"):
            if getattr(cfg, name) < 1:
                raise PhiError(f"--{name.replace('_', '-')}={getattr(cfg, name)}; expected >= 1")
        for name in ("hypergrad_checkpoint", "hypergrad_truncate"):
            if getattr(cfg, name) < 0:
                raise PhiError(f"--{name.replace('_', '-')}={getattr(cfg, name)}; expected >= 0 (0: off)")
        check_dev_objective(str(cfg.teacher_dev_objective))  # argparse checks it; a config file does not
        if not (math.isfinite(cfg.teacher_bleu_alpha) and cfg.teacher_bleu_alpha > 0):
            raise PhiError(f"--teacher-bleu-alpha={cfg.teacher_bleu_alpha}; expected a finite number > 0")
        self.bleu_options = BleuOptions(cfg.teacher_bleu_candidates, cfg.teacher_bleu_alpha,
                                        bool(cfg.teacher_bleu_include_reference))
        self.sampler = None  # expected_bleu: a copy of the student that holds the unrolled weights
        if str(cfg.inner_optimizer) == "twin" and (cfg.inner_lr is not None or cfg.inner_momentum):
            raise PhiError("--inner-lr / --inner-momentum set a fresh --inner-optimizer sgd or adam; the default "
                           "--inner-optimizer twin takes the student's own optimiser and learning rates")
        self._twin_checked = False
        self.recent_lrs: List[float] = []  # the learning rate of each of the last T updates
        self.learner: Optional[TeacherLearner] = None
        self.recent: List[List[dict]] = []  # the micro-batches of each of the last T updates
        self.recent_features: List[torch.Tensor] = []  # s_t of each of them, recorded at that update
        self.pending_features: Optional[torch.Tensor] = None
        self.pending: List[dict] = []  # the micro-batches of the current update
        self.pending_nll = 0.0  # summed NLL and target tokens of the current update's real batches
        self.pending_tokens = 0
        self.omega0 = None
        self.dev_samples = None
        self.teacher_steps = 0
        self.tracker: Optional[StudentStateTracker] = None  # built with the criterion (needs C)
        self.horizon = cfg.teacher_horizon or cfg.max_update
        self._resume_checked = False

    # ---- set-up -------------------------------------------------------------------------
    def build_criterion(self, cfg):
        # Checked here, not in __init__: fairseq-generate sets up the task without training options.
        if self.horizon <= 0:
            raise PhiError("translation_l2t needs --max-update > 0 or --teacher-horizon")
        criterion = super().build_criterion(cfg)
        if not isinstance(criterion, DynamicLossCriterion):
            raise PhiError(f"--task translation_l2t needs --criterion dynamic_loss; got {type(criterion).__name__}")
        if str(criterion.cfg.phi_source) != "fixed":
            raise PhiError("--task translation_l2t sets Phi itself; use --phi-source fixed")
        phi = criterion.phi
        self.tracker = StudentStateTracker(int(self.horizon), max(self.cfg.lr), phi.num_classes)
        options = dict(rank=criterion.cfg.phi_rank, num_buckets=criterion.cfg.phi_buckets)
        if self.cfg.teacher_init:
            teacher = load_teacher(self.cfg.teacher_init, phi.parametrisation, phi.num_classes,
                                   form=criterion.form, **options)
        else:  # form: a prob-form teacher's Phi is non-negative by construction
            teacher = build_teacher(str(self.cfg.teacher_kind), phi.parametrisation, phi.num_classes,
                                    num_gates=self.cfg.teacher_gates, hidden=self.cfg.teacher_hidden,
                                    seed=self.cfg.teacher_seed, form=criterion.form, **options)
        c = self.cfg
        self.learner = TeacherLearner(
            teacher, lr=c.teacher_lr, clip_norm=c.teacher_clip_norm,
            optimizer=None if str(c.inner_optimizer) == "twin" else
            inner_optimizer(str(c.inner_optimizer), 1e-3 if c.inner_lr is None else c.inner_lr, c.inner_momentum),
            checkpoint_every=c.hypergrad_checkpoint or None, truncate=c.hypergrad_truncate or None,
            reduce_grads=self._average_across_workers)
        self.criterion = criterion
        return criterion

    @staticmethod
    def _data_parallel() -> bool:
        return torch.distributed.is_initialized() and distributed_utils.get_data_parallel_world_size() > 1

    @classmethod
    def _average_across_workers(cls, grads):
        if cls._data_parallel():
            for grad in grads:
                distributed_utils.all_reduce(grad, group=distributed_utils.get_data_parallel_group(), op="sum")
                grad.div_(distributed_utils.get_data_parallel_world_size())

    @classmethod
    def _sum_across_workers(cls, tensor: torch.Tensor) -> torch.Tensor:
        if cls._data_parallel():
            distributed_utils.all_reduce(tensor, group=distributed_utils.get_data_parallel_group(), op="sum")
        return tensor

    @classmethod
    def _mean_across_workers(cls, value: float, device) -> float:
        if not cls._data_parallel():
            return value
        total = cls._sum_across_workers(torch.tensor([value], dtype=torch.float64, device=device))
        return float(total) / distributed_utils.get_data_parallel_world_size()

    # ---- the student state ---------------------------------------------------------------
    def student_state(self, update_num: int) -> StudentState:
        lr_meter = metrics.get_meter("default", "lr")
        self.tracker.num_updates = update_num
        return self.tracker.state(float(lr_meter.val) if lr_meter is not None else self.tracker.peak_lr)

    def _set_phi(self, update_num: int, device) -> None:
        """Phi_t = teacher(s_t) for update ``update_num``; s_t is kept for the unroll that will
        replay this update's batches (so features and batches refer to the same updates)."""
        teacher = self.learner.teacher.to(device)
        features = self.student_state(update_num).features(self.criterion.phi.num_classes)
        if self.pending_features is None:  # the update's first micro-batch
            self.pending_features = features
        with torch.no_grad():
            self.criterion.phi.load_tensors(teacher(features.to(device)), form=self.criterion.form)

    # ---- the teacher step -------------------------------------------------------------------
    # The streams' students are unrolled as one: their parameters are stacked in one dict under
    # "j/name" keys, the inner loss is the sum of the streams' losses and the dev objective their
    # mean. The inner optimisers act elementwise, so each stream follows its own trajectory exactly
    # and the hypergradient is the mean of the streams' hypergradients.
    @staticmethod
    def _stack_streams(params, streams: int):
        return {f"{j}/{name}": p for j in range(streams) for name, p in params.items()}

    @staticmethod
    def _stream_params(stacked, names, j: int):
        return {name: stacked[f"{j}/{name}"] for name in names}

    def _student_loss(self, student: FunctionalModule, model, names):
        criterion = self.criterion

        def loss(params, phi_tensors, samples):
            """Summed over the streams: ``samples[j]`` is stream j's batch of this inner step."""
            total = 0.0
            for j, sample in enumerate(samples):
                net_output = student(self._stream_params(params, names, j), **sample["net_input"])
                lprobs = model.get_normalized_probs(net_output, log_probs=True)
                target = model.get_targets(sample, net_output)
                out = dynamic_loss(lprobs.view(-1, lprobs.size(-1)), target.view(-1), criterion.phi,
                                   scale=criterion.scale, nll_weight=criterion.cfg.nll_weight,
                                   label_smoothing=criterion.cfg.label_smoothing,
                                   ignore_index=criterion.padding_idx, phi_tensors=phi_tensors,
                                   form=criterion.form)
                total = total + out.loss / sample["ntokens"]
            return total

        return loss

    def _dev_objective(self, student: FunctionalModule, model, names, streams: int):
        kind = str(self.cfg.teacher_dev_objective)
        pad, eos = self.tgt_dict.pad(), self.tgt_dict.eos()

        def objective(params):
            """Mean over the streams of the dev objective (``tasks/l2t_dev_objective.py``)."""
            was_training = model.training
            model.eval()  # the metric of the student as it would be evaluated
            try:
                scores = []
                for j in range(streams):
                    own = self._stream_params(params, names, j)
                    candidates = self._candidates(model, own) if kind == "expected_bleu" else None
                    scores.append(dev_objective(kind, BoundStudent(student, model, own), self.dev_samples, pad,
                                                eos, candidates, self.bleu_options))
                return torch.stack(scores).mean()
            finally:
                model.train(was_training)

        return objective

    def _candidates(self, model, params):
        """expected_bleu: candidates of every dev batch sampled from the student at ``params``
        (the unrolled weights, detached: candidates are constants), seeded by --seed and the
        teacher step (a resumed run draws the same)."""
        if self.sampler is None:
            self.sampler = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in self.sampler.named_parameters():  # tied weights are one entry: set once
                p.copy_(params[name])
        seed = 1_000_003 * (self.cfg.seed + 1) + self.teacher_steps  # a new draw every teacher step
        return [sample_candidates(self, self.sampler, sample, self.bleu_options, seed + k)
                for k, sample in enumerate(self.dev_samples)]

    def _load_dev_samples(self, device):
        return random_dev_subset(self, self.cfg.valid_subset.split(",")[0], self.cfg.teacher_dev_batches,
                                 self.cfg.teacher_dev_max_sentences, self.cfg.seed, device)

    def teacher_step(self, model, params, update_num: int, optimizer=None) -> None:
        device = next(model.parameters()).device
        result = self.unroll_and_update_teacher(model, params, update_num, optimizer)
        # The mean over ranks, as the hypergradient (one stream per rank with --update-freq 1).
        result.dev_objective = self._mean_across_workers(result.dev_objective, device)
        self.teacher_steps += 1
        metrics.log_scalar("teacher_dev_obj", result.dev_objective, weight=1, round=4)
        metrics.log_scalar("teacher_gnorm", result.grad_norm, weight=1, round=4)
        metrics.log_scalar("teacher_skipped", float(result.skipped), weight=1, round=2)
        if self._is_master():
            self._export(update_num, result)

    def unroll_and_update_teacher(self, model, params, update_num: int, optimizer=None):
        """One teacher update from the buffered updates (``self.recent``) and ``params`` =
        omega_0, without logging or export (also what scripts/bench_teacher.py and
        scripts/gpu_teacher_step.py time). Returns the ``TeacherStepResult``.

        Args:
            optimizer: fairseq's optimiser of the student; needed by ``--inner-optimizer twin``.
        """
        device = next(model.parameters()).device
        if self.dev_samples is None:
            # A DataLoader draws its base seed from the global RNG: keep the unroll's dropout
            # independent of when the dev batches were first loaded (e.g. after a resume).
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                self.dev_samples = self._load_dev_samples(device)
        student = FunctionalModule(model)
        # Stream j: the j-th micro-batch of each of the T updates (the last update of an epoch
        # may have fewer micro-batches; ranks always have as many as each other).
        streams = min(len(group) for group in self.recent)
        batches = [group[:streams] for group in self.recent]
        names = list(params)
        # cuDNN RNNs have no double backward (hypergrad/kernels.py): LSTM students unroll without it.
        rnn_on_cuda = device.type == "cuda" and any(isinstance(m, torch.nn.RNNBase) for m in model.modules())
        twin, opt_state = self._twin(optimizer, model, streams) if str(self.cfg.inner_optimizer) == "twin" \
            else (None, None)
        with torch.backends.cudnn.flags(enabled=False) if rnn_on_cuda else contextlib.nullcontext():
            result = self.learner.step(self._student_loss(student, model, names),
                                       self._dev_objective(student, model, names, streams),
                                       self._stack_streams(params, streams), batches,
                                       torch.stack(self.recent_features).to(device),
                                       opt_state=opt_state, optimizer=twin)
        return result

    def _twin(self, optimizer, model, streams: int):
        """The student's own optimiser as a functional one (``tasks/fairseq_twin.py``) with its live
        buffers (episodic: none, the real student never steps) and the learning rates of the
        buffered updates, one stacked copy per stream."""
        if optimizer is None:
            raise ValueError("--inner-optimizer twin needs the student's fairseq optimiser; pass it, or use "
                             "--inner-optimizer sgd / adam")
        lrs = self.recent_lrs[-len(self.recent):]
        lrs = [optimizer.get_lr()] * (len(self.recent) - len(lrs)) + lrs  # a checkpoint without them
        names = {p: n for n, p in model.named_parameters()}
        return fairseq_twin(optimizer, names, lrs, self.cfg.clip_norm, [f"{j}/" for j in range(streams)])

    @staticmethod
    def _is_master() -> bool:
        return not torch.distributed.is_initialized() or distributed_utils.get_data_parallel_rank() == 0

    def _export(self, update_num, result) -> None:
        os.makedirs(self.cfg.save_dir, exist_ok=True)
        path = self.cfg.teacher_save or os.path.join(self.cfg.save_dir, "teacher.pt")
        save_teacher(self.learner.teacher, path, horizon=int(self.horizon))
        log_path = os.path.join(self.cfg.save_dir, "teacher_log.csv")
        new = not os.path.exists(log_path)
        with open(log_path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["teacher_step", "update", "dev_objective", "hypergrad_norm", "skipped"])
            writer.writerow([self.teacher_steps, update_num, f"{result.dev_objective:.6f}",
                             f"{result.grad_norm:.6g}", int(result.skipped)])

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self):
        """Teacher, its optimiser, the unroll buffer and counters: saved in every checkpoint."""
        state = dict(super().state_dict())
        if self.learner is not None:
            state["l2t"] = {
                "learner": self.learner.state_dict(),
                "recent": [[utils.move_to_cpu(sample) for sample in group] for group in self.recent],
                "omega0": None if self.omega0 is None else {k: v.cpu() for k, v in self.omega0.items()},
                "teacher_steps": self.teacher_steps,
                "tracker": self.tracker.state_dict(),
                "recent_features": list(self.recent_features),
                "recent_lrs": list(self.recent_lrs),
            }
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        l2t = state_dict.pop("l2t", None)
        super().load_state_dict(state_dict)
        if l2t is not None and self.learner is not None:
            self.learner.load_state_dict(l2t["learner"])
            self.recent = list(l2t["recent"])
            self.omega0 = l2t["omega0"]
            self.teacher_steps = l2t["teacher_steps"]
            self.tracker.load_state_dict(l2t["tracker"])
            self.recent_features = list(l2t["recent_features"])
            self.recent_lrs = list(l2t.get("recent_lrs", []))  # older checkpoints: the current rate

    def _resume(self, device) -> None:
        """Load the teacher state from the checkpoint fairseq-train resumed from."""
        state = restore_task_state(self.cfg)
        if state is None:
            return
        self.load_state_dict(state)
        if device.type == "cuda":
            self.recent = [[utils.move_to_cuda(s, device=device) for s in group] for group in self.recent]
        if self.omega0 is not None:
            self.omega0 = {k: v.to(device) for k, v in self.omega0.items()}
        logger.info(f"translation_l2t: resumed teacher state from {self.cfg.restore_file} "
                    f"({self.teacher_steps} teacher steps)")

    # ---- fairseq hooks ------------------------------------------------------------------------
    @staticmethod
    def _unwrap(model):
        """The fairseq model inside fairseq's DDP wrappers (ModuleProxyWrapper(DDP(model))): the
        unroll is per worker."""
        while isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        return model

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        module = self._unwrap(model)
        device = next(module.parameters()).device
        if not self._resume_checked:
            self._resume_checked = True
            self._resume(device)
        self._set_phi(update_num, device)
        # Dummy batches (fairseq's stand-in on a rank whose shard ran out) join the unroll too:
        # every rank then has as many streams and enters the teacher step's all-reduce together.
        self.pending.append(sample)
        if str(self.cfg.teacher_mode) == "episodic":
            if self.omega0 is None:
                self.omega0 = {n: p.detach().clone() for n, p in module.named_parameters()}
            model.train()
            with torch.no_grad():  # the real student stays at omega_0: no backward, no update
                loss, sample_size, logging_output = criterion(model, sample)
        else:
            loss, sample_size, logging_output = super().train_step(
                sample, model, criterion, optimizer, update_num, ignore_grad)
        ntokens = sample["ntokens"] if sample else 0
        if ntokens and not ignore_grad:
            self.pending_nll += float(logging_output["nll_loss"])
            self.pending_tokens += int(ntokens)
        return loss, sample_size, logging_output

    def optimizer_step(self, optimizer, model, update_num):
        """End of an update, after all its micro-batches on every rank: teacher step, then the real one."""
        module = self._unwrap(model)
        device = next(module.parameters()).device
        if not self._twin_checked and str(self.cfg.inner_optimizer) == "twin":
            # Refuse an optimiser without a twin at the first update, not at the first teacher step.
            fairseq_twin(optimizer, {p: n for n, p in module.named_parameters()}, [0.0], self.cfg.clip_norm)
            self._twin_checked = True
        self.recent = (self.recent + [self.pending])[-self.cfg.unroll_steps:]
        self.recent_features = (self.recent_features + [self.pending_features])[-self.cfg.unroll_steps:]
        self.recent_lrs = (self.recent_lrs + [float(optimizer.get_lr())])[-self.cfg.unroll_steps:]
        self.pending, self.pending_features = [], None
        ready = len(self.recent) == self.cfg.unroll_steps
        if str(self.cfg.teacher_mode) == "episodic":
            if ready:
                self.teacher_step(module, self.omega0, update_num, optimizer)
                self.recent, self.recent_features, self.recent_lrs = [], [], []
        elif ready and update_num > 0 and update_num % self.cfg.teacher_interval == 0:
            params = {n: p.detach().clone() for n, p in module.named_parameters()}
            self.teacher_step(module, params, update_num, optimizer)
        self._update_train_loss(device)
        super().optimizer_step(optimizer, model, update_num)

    def _update_train_loss(self, device) -> None:
        """The train-loss EMA takes the NLL per token of the whole update (all micro-batches, all
        ranks), so that every rank computes the same state features."""
        totals = torch.tensor([self.pending_nll, self.pending_tokens], dtype=torch.float64, device=device)
        self.pending_nll, self.pending_tokens = 0.0, 0
        nll, tokens = self._sum_across_workers(totals).tolist()
        if tokens > 0:
            self.tracker.observe_train(nll / tokens)
