"""``--criterion dynamic_loss``: fairseq adapter around ``losses.dynamic_loss``.

The maths lives in ``fairseq_dynloss/losses``; this file only turns fairseq samples into
``(lprobs, target)``, builds Phi from the target dictionary, and logs summable statistics.

Phi is a set of buffers of this (parameter-free) criterion, so fairseq does not save it with the
criterion: ``--phi-source fixed`` rebuilds it from ``--phi-init``, ``teacher`` recomputes it every
update, and with ``ala`` the ``translation_ala`` task's controller moves it in place and keeps it in
the task state of checkpoints.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ..losses import (
    FORMS, PARAMETRISATIONS, PhiError, build_phi, default_scale, dynamic_loss, load_phi_file,
)
from ..teacher import StudentState, StudentStateTracker, load_teacher

PHI_SOURCES = ("fixed", "teacher", "ala")

# Logged per forward call and averaged over calls in reduce_metrics (summable: DDP-safe).
PHI_STAT_KEYS = ("phi_diag_mean", "phi_offdiag_absmean")


@dataclass
class DynamicLossConfig(FairseqDataclass):
    dynamic_form: ChoiceEnum(FORMS) = field(
        default="paper",
        metadata={"help": "paper: l = -sigmoid(s * Phi[y] . log p), the L2T-DLF/ALA papers' form; "
                  "prob: l = -log sum_j p_j Phi[j, y] with Phi >= 0 (cross-entropy at Phi = I, "
                  "forward correction at Phi = the noise matrix T; no --phi-scale). "
                  "docs/loss_forms.md"},
    )
    phi_parametrisation: ChoiceEnum(PARAMETRISATIONS) = field(
        default="diag_lowrank",
        metadata={"help": "how Phi (|V| x |V|) is parametrised: full (dense; small vocabularies), "
                  "diag_lowrank (diag(d) + U V^T, rank --phi-rank), bucketed (diagonal plus a "
                  "G x G matrix over --phi-buckets frequency buckets of the target dictionary)"},
    )
    phi_rank: int = field(default=32, metadata={"help": "rank r of diag_lowrank Phi"})
    phi_buckets: int = field(
        default=8, metadata={"help": "number G of frequency buckets of bucketed Phi"}
    )
    phi_scale: Optional[float] = field(
        default=None,
        metadata={"help": "scale s inside the sigmoid, l = -sigmoid(s * Phi[y] . log p); "
                  "default 1/sqrt(|V|), which keeps the sigmoid out of saturation (README, "
                  "'Choosing the scale s'); "
                  "paper form only"},
    )
    phi_grad_interval: int = field(
        default=100,
        metadata={"help": "every N-th forward call also measures the Phi term's share of the logit "
                  "gradient (logged as phi_grad_share and phi_grad_ratio; one extra backward "
                  "through the loss); 0 never"},
    )
    nll_weight: float = field(
        default=0.0,
        metadata={"help": "weight a in [0, 1] of the NLL term: loss = a * nll + (1 - a) * l_Phi"},
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "label smoothing epsilon of the NLL term"}
    )
    phi_init: str = field(
        default="identity",
        metadata={"help": "initial Phi: 'identity', a .pt file (a (|V|, |V|) tensor for full, "
                  "or what fairseq_dynloss.losses.save_phi writes; read with weights_only=True), "
                  "or a .csv of |V| rows of |V| numbers for full, e.g. a noise matrix T for "
                  "--dynamic-form prob"},
    )
    phi_source: ChoiceEnum(PHI_SOURCES) = field(
        default="fixed",
        metadata={"help": "where Phi comes from during training: fixed (--phi-init), teacher "
                  "(a frozen L2T-DLF teacher, --teacher-path, maps the live student state to Phi_t), "
                  "or ala (--task translation_ala: an ALA controller moves the bucketed Phi every "
                  "--ala-interval updates, starting from --phi-init)"},
    )
    teacher_path: Optional[str] = field(
        default=None, metadata={"help": "teacher file for --phi-source teacher (weights_only=True)"}
    )
    teacher_horizon: int = field(
        default=0,
        metadata={"help": "updates that the teacher's progress feature t/T calls 'the end' (T); "
                  "0: the horizon stored in the teacher file, else --max-update"},
    )
    max_update: int = II("optimization.max_update")
    lr: List[float] = II("optimization.lr")
    report_accuracy: bool = field(default=False, metadata={"help": "report token accuracy"})
    ignore_prefix_size: int = field(default=0, metadata={"help": "ignore first N target tokens"})
    # Same coupling as fairseq's own criterions: --sentence-avg normalises by sentences.
    sentence_avg: bool = II("optimization.sentence_avg")


@register_criterion("dynamic_loss", dataclass=DynamicLossConfig)
class DynamicLossCriterion(FairseqCriterion):
    """Dynamic loss per target token (L2T-DLF / ALA): ``-sigmoid(s * Phi[y] . log p)`` (paper
    form) or ``-log (p^T Phi)_y`` (prob form)."""

    def __init__(self, task, cfg: DynamicLossConfig):
        super().__init__(task)
        self.cfg = cfg
        self.sentence_avg = cfg.sentence_avg
        dictionary = task.target_dictionary
        num_classes = len(dictionary)
        if not 0.0 <= cfg.nll_weight <= 1.0:
            raise PhiError(f"--nll-weight={cfg.nll_weight}; expected a value in [0, 1]")
        if not 0.0 <= cfg.label_smoothing < 1.0:
            raise PhiError(f"--label-smoothing={cfg.label_smoothing}; expected a value in [0, 1)")
        if cfg.phi_scale is not None and not (cfg.phi_scale > 0 and math.isfinite(cfg.phi_scale)):
            raise PhiError(f"--phi-scale={cfg.phi_scale}; expected a positive finite number")
        self.form = str(cfg.dynamic_form)
        if self.form == "prob" and cfg.phi_scale is not None:
            raise PhiError(f"--phi-scale={cfg.phi_scale} with --dynamic-form prob; the prob form "
                           "has no scale (a factor on a column of Phi only shifts the loss)")
        if cfg.phi_grad_interval < 0:
            raise PhiError(f"--phi-grad-interval={cfg.phi_grad_interval}; expected >= 0 (0: never)")
        self._calls = 0
        self.phi = build_phi(
            str(cfg.phi_parametrisation),
            num_classes,
            rank=cfg.phi_rank,
            counts=list(dictionary.count),
            num_buckets=cfg.phi_buckets,
        )
        if cfg.phi_init != "identity":
            load_phi_file(self.phi, cfg.phi_init, form=self.form)
        if self.form == "prob":
            self.scale = 1.0
        else:
            self.scale = cfg.phi_scale if cfg.phi_scale is not None else default_scale(num_classes)
        self.teacher = None
        if cfg.phi_source == "teacher":
            self._setup_teacher(cfg, num_classes)
        elif cfg.phi_source == "ala":
            self._check_ala_task(task)

    @staticmethod
    def _check_ala_task(task) -> None:
        # Duck-typed (not an isinstance check): this module and the task module would import
        # each other.
        if not getattr(task, "moves_phi", False):
            name = getattr(getattr(task, "cfg", None), "_name", None) or type(task).__name__
            raise PhiError(f"--phi-source ala needs --task translation_ala (its controller moves Phi); "
                           f"got --task {name}")

    def _setup_teacher(self, cfg: DynamicLossConfig, num_classes: int) -> None:
        if not cfg.teacher_path:
            raise PhiError("--phi-source teacher needs --teacher-path (a file written by save_teacher)")
        # The teacher file must be of the student's loss form (a paper-form Phi may be negative).
        teacher = load_teacher(cfg.teacher_path, str(cfg.phi_parametrisation), num_classes,
                               rank=cfg.phi_rank, num_buckets=cfg.phi_buckets, form=self.form)
        teacher.requires_grad_(False).eval()
        # Not a registered submodule: the criterion stays parameter-free, so fairseq neither
        # optimises the frozen teacher nor wraps the criterion in DDP.
        object.__setattr__(self, "teacher", teacher)
        self.horizon = cfg.teacher_horizon or teacher.config.get("horizon") or cfg.max_update
        if not self.horizon or self.horizon <= 0:
            raise PhiError("--phi-source teacher needs a horizon: --teacher-horizon, a teacher file "
                           "with 'horizon', or --max-update")
        self.peak_lr = max(cfg.lr)
        # The one student-state definition (teacher/state.py), as the teacher was trained with.
        self.tracker = StudentStateTracker(int(self.horizon), self.peak_lr, num_classes)
        self.train_loss = self.tracker.train_loss
        self._dev_sums = [0.0, 0.0, 0]  # nll, correct, tokens of the validation pass under way
        self._phi_update = None

    def student_state(self) -> StudentState:
        """The live training state the teacher reads (fairseq's logged num_updates and lr)."""
        num_updates_meter = metrics.get_meter("default", "num_updates")
        lr_meter = metrics.get_meter("default", "lr")
        self.tracker.num_updates = int(num_updates_meter.val) if num_updates_meter is not None else 0
        return self.tracker.state(float(lr_meter.val) if lr_meter is not None else self.peak_lr)

    def _teach(self, training: bool, nll_sum: float, correct: float, ntokens: int, device) -> None:
        """Track the student's statistics and refresh Phi_t = teacher(s_t) once per update."""
        if training:
            if self._dev_sums[2] > 0:  # a validation pass just ended
                nll, right, count = self._dev_sums
                self.tracker.observe_dev(nll / count, right / count)
                self._dev_sums = [0.0, 0.0, 0]
            state = self.student_state()
            if state.num_updates != self._phi_update:
                with torch.no_grad():
                    self.teacher.to(device)
                    self.phi.load_tensors(self.teacher(state.features(self.phi.num_classes).to(device)),
                                          form=self.form)
                self._phi_update = state.num_updates
            self.tracker.observe_train(nll_sum / max(ntokens, 1))
        else:
            self._dev_sums[0] += nll_sum
            self._dev_sums[1] += correct
            self._dev_sums[2] += ntokens

    @classmethod
    def build_criterion(cls, cfg: DynamicLossConfig, task):
        return cls(task, cfg)

    def forward(self, model, sample, reduce=True):
        """Returns ``(loss, sample_size, logging_output)`` as every fairseq criterion."""
        net_output = model(**sample["net_input"])
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        mask = target.ne(self.padding_idx)
        if self.teacher is not None:
            with torch.no_grad():
                nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[mask].sum().item()
                correct = (lprobs.argmax(-1).eq(target) & mask).sum().item()
            self._teach(model.training, nll, correct, int(mask.sum().item()), lprobs.device)
        interval = self.cfg.phi_grad_interval
        measure = interval > 0 and self._calls % interval == 0
        self._calls += 1
        out = dynamic_loss(
            lprobs,
            target,
            self.phi,
            scale=self.scale,
            nll_weight=self.cfg.nll_weight,
            label_smoothing=self.cfg.label_smoothing,
            ignore_index=self.padding_idx,
            reduce=reduce,
            form=self.form,
            measure_gradient=measure,
        )
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        # |s u| > 4 puts the sigmoid's slope below 0.018 (vs 0.25 at 0): "saturated".
        saturated = (out.sigmoid_arg.abs() > 4.0) & mask
        logging_output = {
            "loss": out.loss.data,
            "nll_loss": out.nll_loss.data,
            "dynamic_loss": out.dynamic.data,
            "sigmoid_saturated": saturated.sum().data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
            "phi_calls": 1,
        }
        if measure:  # summed over tokens (and workers); reduce_metrics divides by the count
            logging_output["phi_grad_share"] = out.phi_grad_share.sum().data
            logging_output["phi_grad_ratio"] = out.phi_grad_ratio.sum().data
            logging_output["phi_grad_tokens"] = mask.sum().data
        for key, value in self.phi.statistics().items():
            logging_output[key] = value
        if self.cfg.report_accuracy:
            correct = lprobs.argmax(-1).eq(target) & mask
            logging_output["n_correct"] = correct.sum().item()
            logging_output["total"] = mask.sum().item()
        return out.loss, sample_size, logging_output

    def get_lprobs_and_target(self, model, net_output, sample):
        """Flattened ``lprobs`` (N, C) and ``target`` (N,)."""
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        target = model.get_targets(sample, net_output)
        if self.cfg.ignore_prefix_size > 0:
            lprobs = lprobs[:, self.cfg.ignore_prefix_size :, :].contiguous()
            target = target[:, self.cfg.ignore_prefix_size :].contiguous()
        return lprobs.view(-1, lprobs.size(-1)), target.view(-1)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs (summed across workers first)."""

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        loss_sum, nll_sum = total("loss"), total("nll_loss")
        ntokens, sample_size = total("ntokens"), total("sample_size")
        metrics.log_scalar("loss", loss_sum / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("nll_loss", nll_sum / ntokens / math.log(2), ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        metrics.log_scalar("dynamic_loss", total("dynamic_loss") / ntokens, ntokens, round=4)
        metrics.log_scalar("sigmoid_sat", total("sigmoid_saturated") / ntokens, ntokens, round=4)
        measured = total("phi_grad_tokens")
        if measured > 0:
            for key in ("phi_grad_share", "phi_grad_ratio"):
                metrics.log_scalar(key, total(key) / measured, measured, round=4)
        calls = total("phi_calls")
        if calls > 0:
            for key in PHI_STAT_KEYS:
                metrics.log_scalar(key, total(key) / calls, calls, round=4)
        correct_total = total("total")
        if correct_total > 0:
            metrics.log_scalar("n_correct", total("n_correct"))
            metrics.log_scalar("total", correct_total)
            metrics.log_derived(
                "accuracy",
                lambda m: round(m["n_correct"].sum * 100.0 / m["total"].sum, 3)
                if m["total"].sum > 0 else float("nan"),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
