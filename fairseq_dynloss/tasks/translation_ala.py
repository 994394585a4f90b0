"""``--task translation_ala``: ALA (adaptive loss alignment, docs/design.md §3.4) inside ``fairseq-train``.

Use with ``--criterion dynamic_loss --phi-source ala --phi-parametrisation bucketed``. The
criterion owns Phi, a ``BucketedPhi`` ``Phi_ij = d_i [i = j] + B[g(i), g(j)]`` over G frequency
buckets of the target dictionary; this task's controller moves the G x G matrix ``B`` in place
(``d`` stays as ``--phi-init`` set it). Both loss forms work: ``--dynamic-form paper`` (step 4)
and ``--dynamic-form prob`` (below).

After every optimiser step (``optimizer_step``; every ``--ala-metric-every``-th with the window
metric over those updates, ``controllers.reward.sampled_window``) the student ``w^u`` is measured on a fixed
validation subset (``--ala-val-batches`` batches of ``--ala-val-max-sentences`` sentences drawn
at random with ``--seed``; eval mode, no grad): the reward metric is the dev NLL per target token
(``--ala-reward loss``) or the corpus BLEU of greedy translations on token ids
(``--ala-reward bleu``, the repo's batched BLEU; subword ids, not detokenised text). Every
``--ala-interval`` (K) updates:

1. **state** -- the bucket confusion ``C`` (G, G) from the same pass:

       C_gh = mean over dev target tokens y with g(y) = g of ( mean over j in bucket h of -log p_j )

   i.e. the classification state ``C_ij`` with classes replaced by buckets (singleton buckets give
   ``C_ij`` exactly), computed by ``controllers.ConfusionAccumulator``. We average ``-log p_j``
   over bucket h rather than take ``-log`` of the probability mass ``P(h)`` because the
   controlled entry ``W[g, h]`` (step 4) weighs exactly ``mean_{j in h} log p_j`` in the loss of a
   token of bucket g: ``-C_gh`` is the very quantity it multiplies, whereas ``-log P(h)`` is
   dominated by the few likely tokens of h and blind to the rest. It also keeps one policy input
   scale for classification and translation (a uniform prediction gives ``log |V|`` everywhere);
2. **features** per entry ``(g, h)``, ``g = h`` included (``B[g, g]`` sets the within-bucket
   off-diagonal): ``[C_gh, C_hg, H earlier states, progress u / T, W_gh]`` (W: step 4; T:
   ``--ala-horizon``, default ``--max-update``);
3. **reward** of the action taken at the end of the previous window,
   ``r = sign(M_{t-1} - M_t)`` (flipped for BLEU) with ``M_t = sum_j gamma^(K-j) M_j`` over the
   window's K per-update values; the policy takes one REINFORCE step on ``<s, a, r - b>``
   (on-policy, or importance-weighted replay with ``--ala-replay-capacity``; the first window only
   sets ``M_0``);
4. **action** -- the policy samples ``{-beta, 0, +beta}`` per entry,
   ``beta = --ala-beta / sqrt(G^2)``, and moves ``W_gh = |h| B_gh`` (clamped into ``[-c, c]``,
   ``--ala-clamp``); ``B_gh = W_gh / |h|``.

**Why W, not B.** ``B[g, h]`` weighs the *sum* ``S_h`` of ``|h|`` log-probabilities (|h| = |V| / G
types), so a step of B changes ``u = Phi[y] . log p`` by ``|h|`` times more than a step of the
diagonal: with the toy's 424 types and G = 4, B = 0.075 already saturated the sigmoid for 87% of
the tokens. ``W_gh`` weighs the *mean* log-probability of bucket h, ``u = d_y log p_y +
sum_h W_{g(y) h} mean_{j in h} log p_j``, so beta and the clamp mean the same whatever |V| and G:
``W`` = 0.1 is a label-smoothing-sized pull towards (W > 0) or away from (W < 0) bucket h.

**--dynamic-form prob** (``l = -log (p^T M)_y``, ``M[j, y] = d_j [j = y] + B[g(j), g(y)] / |g(j)|``)
needs ``B >= 0``, and there B already weighs a bucket's *mean* probability. The actions move G x G
logits instead, ``L += beta a`` with ``B = exp(L)`` (non-negative by construction); L starts at
``--ala-logit-init`` (B ~ 1e-4: cross-entropy up to about G 1e-4 nats per token; a B from
``--phi-init`` is replaced, its ``d`` kept) and stays in
``[--ala-logit-init, --ala-logit-max]`` (``controllers/targets.py``). ``--ala-clamp`` (a bound on
W) is for the paper form and refused here. The logits are saved with the controller state.

The maths and the window bookkeeping are ``fairseq_dynloss.controllers`` (``WindowController``
with the bucketed ``PairTarget``, shared with ``dynloss-train``); this file is the fairseq
adapter. It never imports the generic trainer (matplotlib, hydra).

**Checkpoints.** Phi is a buffer of a parameter-free criterion, which fairseq does not save, so
the controller state -- policy, its Adam state, baseline, replay memory, state history, window
reward, action generator, counters, log rows *and Phi's tensors* -- is saved once, in the task
state of every checkpoint. fairseq's trainer saves ``task.state_dict()`` but does not restore it,
so the task reads it back from the restore file at the first ``train_step``; ``--restore-file
checkpoint_last.pt`` then reproduces the uninterrupted run (tested, CPU).

**Files** (rank 0): ``SAVE_DIR/ala_log.csv``, one row per window (rewritten from the rows kept in
the checkpoint, so a resumed run never duplicates rows), and ``SAVE_DIR/ala_controller.pt``, the
policy for transfer (``--ala-policy``).

**Data parallel.** Every rank measures the same subset on the same weights and samples with the
same seeded generators; ``B`` is still broadcast from rank 0 after each action so that all
replicas train with one loss. This is single-network ALA; multi-network ALA (several children
sharing one controller) is not implemented here.

**Cost.** One teacher-forced forward pass over the subset per update (``loss``), or one greedy
decode per update plus a forward pass per window (``bleu``): keep the subset small.
"""

# No "from __future__ import annotations": fairseq reads the dataclass field types at runtime.
import logging
import math
import os
import time
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq import distributed_utils, utils
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from ..controllers import (
    STATE_SOURCES, ConfusionAccumulator, ControllerError, PairTarget, WindowController, check_beta,
    check_gamma, check_window, controlled_tensor, load_controller, measures_metric, sampled_window,
)
from ..controllers.errors import check_number, check_positive_int
from ..controllers.targets import check_logit_box
from ..criterions.dynamic_loss import DynamicLossCriterion
from ..losses import PhiError
from ..metrics import BleuStats, bleu_stats, corpus_bleu_from_stats
from .dev_subset import random_dev_subset
from .restore import restore_task_state

logger = logging.getLogger(__name__)

REWARDS = ("loss", "bleu")


@dataclass
class TranslationALAConfig(TranslationConfig):
    ala_interval: int = field(
        default=20, metadata={"help": "K: student updates per controller step (>= 1)"})
    ala_metric_every: int = field(
        default=1, metadata={"help": "measure the reward metric after every n-th update only (a "
                             "divisor of --ala-interval; 1: every update, the slides' reward). The "
                             "window metric then sums updates n, 2n, ..., K with the same weights "
                             "gamma^(K-j); n = K measures at the window's end only, which "
                             "dynloss-train does by default. With --ala-reward bleu each measurement "
                             "decodes the validation subset, so n sets most of ALA's cost"})
    ala_reward: ChoiceEnum(REWARDS) = field(
        default="bleu", metadata={"help": "reward metric on the validation subset: bleu (corpus BLEU "
                                  "of greedy translations on token ids, higher is better; the "
                                  "metric, as in the slides) or loss (NLL per target token)"})
    ala_gamma: float = field(
        default=0.9, metadata={"help": "discount of the window metric M = sum_j gamma^(K-j) M_j, in (0, 1]"})
    ala_beta: float = field(
        default=0.1, metadata={"help": "base step size (> 0): each entry W[g, h] = |h| B[g, h] "
                               "(--dynamic-form prob: each logit L[g, h] of B = exp(L)) moves by "
                               "beta = base / sqrt(G^2) per window"})
    ala_clamp: Optional[float] = field(
        default=None, metadata={"help": "--dynamic-form paper: clamp the entries W[g, h] = |h| B[g, h] "
                                "into [-c, c] after each step (>= 0; 0: no clamp; default 0.1). Not "
                                "with --dynamic-form prob, whose logits stay in [--ala-logit-init, "
                                "--ala-logit-max]"})
    ala_logit_init: float = field(
        default=-9.2, metadata={"help": "--dynamic-form prob: the controlled logits L (B = exp(L)) at "
                                "the start; -9.2: B ~ 1e-4, cross-entropy up to ~G 1e-4 nats per token"})
    ala_logit_max: float = field(
        default=0.0, metadata={"help": "--dynamic-form prob: the largest logit (> --ala-logit-init, "
                               "<= 0; 0: B <= 1, each bucket's mean probability counts at most fully)"})
    ala_history: int = field(
        default=2, metadata={"help": "H: earlier states in each entry's features (>= 0)"})
    ala_val_batches: int = field(
        default=2, metadata={"help": "batches of the validation subset that gives state and reward, "
                             "drawn at random with --seed (>= 1)"})
    ala_val_max_sentences: int = field(
        default=32, metadata={"help": "sentences per batch of the validation subset (>= 1)"})
    ala_max_len_a: float = field(
        default=1.2, metadata={"help": "--ala-reward bleu: greedy translations have at most "
                               "a * source_length + b tokens"})
    ala_max_len_b: int = field(default=10, metadata={"help": "see --ala-max-len-a"})
    ala_hidden: int = field(
        default=32, metadata={"help": "width of the policy MLP (a policy from --ala-policy keeps its own)"})
    ala_lr: float = field(default=0.01, metadata={"help": "Adam learning rate of the policy (> 0)"})
    ala_baseline_decay: float = field(
        default=0.8, metadata={"help": "decay of the per-step REINFORCE baseline, in [0, 1)"})
    ala_entropy_bonus: float = field(
        default=0.01, metadata={"help": "weight (>= 0) of the policy's mean entropy in its objective; "
                                "0.01 is dynloss-train's controller.entropy_bonus (MNIST-1D: better on "
                                "validation than 0.05). Without it the toy LSTM's collapsed ALA seeds were "
                                "those whose policy entropy fell to 0.2-0.3 (docs/investigation.md 4d)"})
    ala_replay_capacity: int = field(
        default=0, metadata={"help": "0: on-policy REINFORCE; > 0: importance-weighted replay from "
                             "this many transitions (oldest evicted)"})
    ala_replay_batch: int = field(
        default=8, metadata={"help": "with replay: transitions per policy step"})
    ala_hold: int = field(
        default=1, metadata={"help": "the policy decides every this many windows and its actions are "
                             "applied again at the windows between; a decision is rewarded with the "
                             "change of the reward until the next decision (1: every window, the slides)"})
    ala_state: ChoiceEnum(STATE_SOURCES) = field(
        default="confusion", metadata={"help": "policy input: the bucket confusion state, or a random "
                                       "matrix of its range (ablation)"})
    ala_horizon: int = field(
        default=0, metadata={"help": "updates that the progress feature u / T calls the end (T; "
                             "0: --max-update)"})
    ala_policy: Optional[str] = field(
        default=None, metadata={"help": "start from the policy of this controller file "
                                "(ala_controller.pt of another run; policy transfer)"})
    ala_freeze_policy: bool = field(
        default=False,
        metadata={"help": "act with the policy without updating it (e.g. a transferred policy)"})
    seed: int = II("common.seed")
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")
    reset_optimizer: bool = II("checkpoint.reset_optimizer")
    valid_subset: str = II("dataset.valid_subset")
    max_update: int = II("optimization.max_update")


def check_ala_options(cfg: TranslationALAConfig) -> None:
    """Raise ControllerError naming the bad ``--ala-*`` option, its value and what was expected."""

    def at_least(minimum):
        return lambda name, value: check_positive_int(name, value, minimum)

    def positive_float(name, value):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ControllerError(f"{name}={value!r}; expected a finite number > 0")

    def non_negative_float(name, value):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ControllerError(f"{name}={value!r}; expected a finite number >= 0")

    def unit_interval(name, value):
        if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
            raise ControllerError(f"{name}={value!r}; expected a value in [0, 1)")

    def named(check):  # the controllers' own checks name their argument, not the option
        def run(name, value):
            try:
                check(value)
            except ControllerError as err:
                raise ControllerError(f"{name}: {err}") from None
        return run

    def optional(check):  # None: the form's default
        return lambda name, value: None if value is None else check(name, value)

    checks = {
        "ala_interval": named(check_window), "ala_gamma": named(check_gamma),
        "ala_beta": named(check_beta), "ala_clamp": optional(non_negative_float), "ala_history": at_least(0),
        "ala_val_batches": at_least(1), "ala_val_max_sentences": at_least(1),
        "ala_max_len_a": non_negative_float, "ala_max_len_b": at_least(1), "ala_hidden": at_least(1),
        "ala_lr": positive_float, "ala_baseline_decay": unit_interval,
        "ala_entropy_bonus": lambda name, value: check_number(name, value, 0.0),
        "ala_replay_capacity": at_least(0), "ala_replay_batch": at_least(1), "ala_horizon": at_least(0),
        "ala_hold": at_least(1),
    }
    for name, check in checks.items():
        check("--" + name.replace("_", "-"), getattr(cfg, name))
    named(lambda n: sampled_window(cfg.ala_interval, n, cfg.ala_gamma))("--ala-metric-every",
                                                                        cfg.ala_metric_every)
    named(lambda box: check_logit_box(*box))("--ala-logit-init/--ala-logit-max",
                                             (cfg.ala_logit_init, cfg.ala_logit_max))
    if str(cfg.ala_reward) not in REWARDS:  # argparse checks the choice; yaml configs do not
        raise ControllerError(f"--ala-reward={cfg.ala_reward!r}; expected one of {list(REWARDS)}")
    if str(cfg.ala_state) not in STATE_SOURCES:
        raise ControllerError(f"--ala-state={cfg.ala_state!r}; expected one of {list(STATE_SOURCES)}")


PAPER_CLAMP = 0.1  # --ala-clamp's default under --dynamic-form paper


def build_controller(cfg: TranslationALAConfig, phi, form: str = "paper") -> WindowController:
    """The window controller over the bucketed Phi's ``W = |h| B`` (paper form) or the logits of
    ``B = exp(L)`` (prob form) (``controllers.targets``)."""
    if form == "prob":
        if cfg.ala_clamp is not None:
            raise ControllerError(
                f"--ala-clamp={cfg.ala_clamp} bounds W = |h| B under --dynamic-form paper; under "
                "--dynamic-form prob the controlled logits stay in [--ala-logit-init, --ala-logit-max] "
                f"(now [{cfg.ala_logit_init}, {cfg.ala_logit_max}]): set those instead")
        clamp = None  # PairTarget's logit box
    else:
        c = PAPER_CLAMP if cfg.ala_clamp is None else cfg.ala_clamp
        clamp = (-c, c) if c > 0 else None
    target = PairTarget(phi, cfg.ala_history, clamp, form=form, logit_init=float(cfg.ala_logit_init),
                        logit_max=float(cfg.ala_logit_max))
    policy = None
    if cfg.ala_policy:
        policy = load_controller(os.path.expanduser(cfg.ala_policy), expected_feature_size=target.feature_size).policy
    window, gamma = sampled_window(cfg.ala_interval, cfg.ala_metric_every, cfg.ala_gamma)
    return WindowController(
        target, metric=str(cfg.ala_reward), window=window, gamma=gamma,
        base_beta=cfg.ala_beta, seed=cfg.seed, history=cfg.ala_history, hidden=cfg.ala_hidden, lr=cfg.ala_lr,
        baseline_decay=cfg.ala_baseline_decay, entropy_bonus=cfg.ala_entropy_bonus,
        replay_capacity=cfg.ala_replay_capacity, replay_batch=cfg.ala_replay_batch,
        train_policy=not cfg.ala_freeze_policy, policy=policy, state_source=str(cfg.ala_state),
        hold=cfg.ala_hold)


@register_task("translation_ala", dataclass=TranslationALAConfig)
class TranslationALATask(TranslationTask):
    """Translation whose loss parameters are adapted by an ALA controller (module docstring)."""

    cfg: TranslationALAConfig
    moves_phi = True  # what --phi-source ala asks of a task (criterions/dynamic_loss.py)

    def __init__(self, cfg: TranslationALAConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        check_ala_options(cfg)
        self.controller: Optional[WindowController] = None
        self.horizon = 0
        self.last_update = 0  # fairseq's update count at the last measurement
        self.criterion: Optional[DynamicLossCriterion] = None
        self.dev_samples: Optional[List[dict]] = None
        self.greedy = None  # SequenceGenerator with beam 1, built at the first BLEU measurement
        self._resume_checked = False

    # ---- set-up -------------------------------------------------------------------------
    def build_criterion(self, cfg):
        # Checked here, not in __init__: fairseq-generate sets up the task without training options.
        horizon = self.cfg.ala_horizon or self.cfg.max_update
        if horizon <= 0:
            raise ControllerError(
                f"translation_ala needs --max-update > 0 (got {self.cfg.max_update}) or --ala-horizon: "
                "the controller's progress feature is update / horizon"
            )
        criterion = super().build_criterion(cfg)
        if not isinstance(criterion, DynamicLossCriterion):
            raise PhiError("--task translation_ala needs --criterion dynamic_loss; "
                           f"got {type(criterion).__name__}")
        if str(criterion.cfg.phi_source) != "ala":
            raise PhiError(f"--task translation_ala moves Phi itself; use --phi-source ala "
                           f"(got --phi-source {criterion.cfg.phi_source})")
        if criterion.phi.parametrisation != "bucketed":
            raise PhiError(
                f"translation_ala controls a bucketed Phi (its G x G matrix B); got "
                f"--phi-parametrisation {criterion.phi.parametrisation}. Use --phi-parametrisation "
                "bucketed --phi-buckets G (a full |V| x |V| Phi makes |V|^2 controlled pairs)"
            )
        self.controller = build_controller(self.cfg, criterion.phi, str(getattr(criterion, "form", "paper")))
        self.horizon = horizon
        self.criterion = criterion
        return criterion

    # ---- the validation subset ----------------------------------------------------------------
    def _load_dev_samples(self, device) -> List[dict]:
        """The fixed validation subset: ``--ala-val-batches`` x ``--ala-val-max-sentences``
        sentences drawn at random with ``--seed`` (fairseq's batch iterator would start with the
        shortest sentences), batched by length."""
        return random_dev_subset(self, self.cfg.valid_subset.split(",")[0], self.cfg.ala_val_batches,
                                 self.cfg.ala_val_max_sentences, self.cfg.seed, device)

    def _dev_lprobs(self, model, sample):
        """Teacher-forced ``lprobs`` (N, V) and ``target`` (N,) at the non-pad target tokens."""
        net_output = model(**sample["net_input"])
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        target = model.get_targets(sample, net_output)
        mask = target.ne(self.tgt_dict.pad())
        return lprobs[mask], target[mask]

    def _greedy_bleu_stats(self, model, sample) -> BleuStats:
        if self.greedy is None:
            args = Namespace(beam=1, nbest=1, max_len_a=self.cfg.ala_max_len_a,
                             max_len_b=self.cfg.ala_max_len_b, min_len=1)
            self.greedy = self.build_generator([model], args)
        hypos = self.greedy.generate([model], {"net_input": sample["net_input"]})
        pad = self.tgt_dict.pad()
        width = max(nbest[0]["tokens"].numel() for nbest in hypos)
        hyps = torch.stack([F.pad(nbest[0]["tokens"], (0, width - nbest[0]["tokens"].numel()), value=pad)
                            for nbest in hypos])
        target = sample["target"]
        return bleu_stats(hyps.to(target.device), target, pad, self.tgt_dict.eos())

    @torch.no_grad()
    def measure(self, model, with_state: bool):
        """The reward metric of ``model`` on the subset and, if asked, the (G, G) state.

        Returns:
            ``(value, state)``: dev NLL per target token (nats) or corpus BLEU (0..100), and the
            bucket confusion ``C`` on CPU or None.
        """
        was_training = model.training
        model.eval()
        try:
            bleu = str(self.cfg.ala_reward) == "bleu"
            phi = self.criterion.phi
            accumulator = ConfusionAccumulator(phi.num_classes, phi.bucket_of.cpu()) if with_state else None
            nll, tokens, stats = 0.0, 0, []
            for sample in self.dev_samples:
                if with_state or not bleu:
                    lprobs, target = self._dev_lprobs(model, sample)
                    nll -= lprobs.gather(-1, target.unsqueeze(-1)).sum().item()
                    tokens += target.numel()
                    if accumulator is not None:
                        accumulator.update(lprobs, target)
                if bleu:
                    stats.append(self._greedy_bleu_stats(model, sample))
        finally:
            model.train(was_training)
        if bleu:
            value = corpus_bleu_from_stats(BleuStats(*(torch.cat(parts) for parts in zip(*stats))))
        else:
            value = nll / tokens
        return value, (accumulator.compute().cpu() if accumulator is not None else None)

    # ---- the controller step ----------------------------------------------------------------
    def after_update(self, model, update: int) -> Optional[Dict]:
        """Measure the student after ``update`` updates (every ``--ala-metric-every``-th); at a
        window end the controller acts."""
        if not measures_metric(update, self.cfg.ala_metric_every):
            return None
        started = time.perf_counter()
        device = next(model.parameters()).device
        end = self.controller.window_ends()
        # The measurement must not move the global RNG: training randomness (dropout) then does not
        # depend on the controller, nor on when the subset was loaded (e.g. on resume).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if self.dev_samples is None:
                self.dev_samples = self._load_dev_samples(device)
            value, state = self.measure(model, with_state=end)
        self.last_update = int(update)
        extra = {"seconds": time.perf_counter() - started}
        row = self.controller.observe(value, state, min(1.0, update / self.horizon), update, extra=extra)
        if row is None:
            return None
        self._broadcast_phi()
        metrics.log_scalar("ala_metric", row["metric"], weight=1, round=4)
        if row["reward"] != "":
            metrics.log_scalar("ala_reward", row["reward"], weight=1, round=3)
        metrics.log_scalar("ala_W_absmean", row["W_mean_abs"], weight=1, round=4)
        metrics.log_scalar("ala_entropy", row["entropy"], weight=1, round=4)
        if self._is_master():
            self.controller.write_files(self.cfg.save_dir, base_beta=float(self.cfg.ala_beta),
                                        history=int(self.cfg.ala_history))
        return row

    def _broadcast_phi(self) -> None:
        if torch.distributed.is_initialized() and distributed_utils.get_data_parallel_world_size() > 1:
            distributed_utils.broadcast(controlled_tensor(self.criterion.phi), src=0,
                                        group=distributed_utils.get_data_parallel_group())

    @staticmethod
    def _is_master() -> bool:
        return not torch.distributed.is_initialized() or distributed_utils.get_data_parallel_rank() == 0

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self):
        """The controller state (with Phi's tensors): saved in every checkpoint."""
        state = dict(super().state_dict())
        if self.controller is not None:
            state["ala"] = {**self.controller.state_dict(), "last_update": self.last_update,
                            "phi": {name: t.detach().cpu().clone() for name, t in self.criterion.phi.tensors().items()}}
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ala = state_dict.pop("ala", None)
        super().load_state_dict(state_dict)
        if ala is not None and self.controller is not None:
            ala = utils.move_to_cpu(ala)  # a checkpoint mapped to CUDA: the controller lives on CPU
            for key, mine in (("feature_size", self.controller.feature_size),
                              ("num_elements", self.controller.num_elements)):
                if ala.get(key) != mine:
                    raise ControllerError(f"checkpoint ALA controller has {key}={ala.get(key)!r}; this run has "
                                          f"{mine} (check --ala-history and --phi-buckets)")
            self.criterion.phi.load_tensors(ala["phi"])  # validated before anything is copied
            self.controller.load_state_dict(ala)
            self.last_update = int(ala["last_update"])

    def _resume(self) -> None:
        """Load the controller state from the checkpoint fairseq-train resumed from."""
        state = restore_task_state(self.cfg)
        if state is None:
            return
        self.load_state_dict(state)
        logger.info(f"translation_ala: resumed controller state from {self.cfg.restore_file} "
                    f"({len(self.controller.rows)} windows, update {self.last_update})")

    # ---- fairseq hooks ------------------------------------------------------------------------
    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if not self._resume_checked:
            self._resume_checked = True
            self._resume()
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def optimizer_step(self, optimizer, model, update_num):
        """The optimiser step of update ``update_num`` (0-based), then the controller's measurement."""
        super().optimizer_step(optimizer, model, update_num)
        if self.controller is not None:
            while hasattr(model, "module"):  # DDP wrappers nest (ModuleProxyWrapper, LegacyDDP)
                model = model.module
            self.after_update(model, update_num + 1)
