#!/usr/bin/env python
"""Cost of a long L2T-DLF unroll on the MNIST-1D MLP: one teacher hypergradient through T steps
(keep-all vs checkpointed) against T plain training steps, time and peak tensor memory.

    OMP_NUM_THREADS=1 python scripts/bench_long_unroll.py --unroll 200

The student is ``model=mnist1d_mlp`` on ``task=mnist1d`` (batch 100) under the prob-form dynamic
loss with a gated teacher (Phi_t = teacher(s_t), s_t from the unroll's StudentStateTracker), Adam
lr 1e-2 as the reference recipe; the teacher step is ``TeacherLearner.step`` with the episodic
phase's student loss (``l2t.unrolled_student_loss``). Targets (issue 16): checkpointed T >= 200
at most 4x the time of T plain steps and at most 0.15x the keep-all memory.

Two baselines of "T plain steps", both ``torch.optim.Adam`` on a live copy of the student:

* ``CE``: cross-entropy (the cheapest training step there is);
* ``dynamic``: the step the unroll replicates and phase (b) takes (``TeacherPhi``): Phi's tensors
  loaded from a frozen teacher's ``teacher(s_t)`` (the tracker's s_t), then the prob-form dynamic
  loss.

The runs are interleaved (plain CE, plain dynamic, each policy; ``--repeats`` rounds) so that a
shared machine's load drifts over all of them alike; times are the best round, as wall time and
as the process's CPU time (the CPU time is less sensitive to other processes on the machine).
``--profile POLICY`` prints a cProfile of one teacher step instead.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from fairseq_dynloss.hypergrad import Adam, FunctionalModule
from fairseq_dynloss.losses import build_phi
from fairseq_dynloss.teacher import StudentStateTracker, TeacherLearner, build_teacher
from fairseq_dynloss.trainer.l2t import UnrollState, objective_loss, unrolled_student_loss
from fairseq_dynloss.trainer.registry import build_net, build_splits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_hypergrad import peak_bytes  # noqa: E402

CONF = os.path.join(os.path.dirname(__file__), "..", "fairseq_dynloss", "trainer", "conf")
POLICIES = {"keep-all": None, "sqrt": "sqrt", "1": 1}


class ProbObjective:
    """The settings objective_loss reads (prob form, no NLL mixing)."""

    def __init__(self, num_classes):
        self.phi = build_phi("full", num_classes)
        self.scale, self.nll_weight, self.label_smoothing, self.form = 1.0, 0.0, 0.0, "prob"


def parse_policy(name):
    if name in POLICIES:
        return POLICIES[name]
    if name.isdigit() and int(name) > 0:
        return int(name)
    raise argparse.ArgumentTypeError(f"policy {name!r}; expected keep-all, sqrt or a positive integer k")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unroll", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policies", nargs="+", default=["keep-all", "sqrt", "1"],
                        help="memory policies: keep-all, sqrt or k (checkpoint every k steps)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--profile", default=None, help="cProfile one teacher step of this policy and exit")
    parser.add_argument("--data-dir", default=os.environ.get("DYNLOSS_DATA", "data"))
    args = parser.parse_args(argv)
    for name in args.policies + ([args.profile] if args.profile is not None else []):
        try:
            parse_policy(name)
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    if "keep-all" not in args.policies and not args.no_memory:
        parser.error("the memory ratios are relative to keep-all: add it to --policies or pass --no-memory")
    torch.manual_seed(0)
    task = OmegaConf.load(os.path.join(CONF, "task", "mnist1d.yaml"))
    model = OmegaConf.load(os.path.join(CONF, "model", "mnist1d_mlp.yaml"))
    splits = build_splits(task, args.data_dir)
    C, T = splits.num_classes, args.unroll
    net = build_net(model, splits.input_shape, C)
    student = FunctionalModule(net)
    objective = ProbObjective(C)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for t in range(T):
        x, y = splits.train.batch(torch.randint(0, len(splits.train), (task.batch_size,), generator=generator))
        batches.append((t, x, y))
    x_dev, y_dev = splits.val.batch(torch.arange(200))
    params = student.params()

    def teacher_step(checkpoint_every):
        teacher = build_teacher("gated", "full", C, form="prob")
        learner = TeacherLearner(teacher, lr=1e-3, optimizer=Adam(lr=1e-2), checkpoint_every=checkpoint_every)
        state = UnrollState(StudentStateTracker(8000, 1.0, C), lambda u: 0, [1.0] * T, None)
        return learner.step(unrolled_student_loss(student, objective, state),
                            lambda p: -F.cross_entropy(student(p, x_dev), y_dev), params, batches, state)

    def plain_steps(dynamic):
        live = build_net(model, splits.input_shape, C)
        opt = torch.optim.Adam(live.parameters(), lr=1e-2)
        teacher = build_teacher("gated", "full", C, form="prob").requires_grad_(False)
        tracker = StudentStateTracker(8000, 1.0, C)
        for _, x, y in batches:
            if dynamic:  # as TeacherPhi: Phi's tensors loaded from the frozen teacher, then the loss
                with torch.no_grad():
                    objective.phi.load_tensors(teacher(tracker.features(1.0)))
                lprobs = F.log_softmax(live(x), dim=1)
                loss = objective_loss(objective, lprobs, y, None)
                tracker.observe_train(F.nll_loss(lprobs.detach(), y).item())
            else:
                loss = F.cross_entropy(live(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    if args.profile is not None:
        policy = parse_policy(args.profile)
        teacher_step(policy)  # warm-up
        profiler = cProfile.Profile()
        profiler.runcall(teacher_step, policy)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    runs = {"plain CE": lambda: plain_steps(False), "plain dynamic": lambda: plain_steps(True)}
    runs.update({name: (lambda p=parse_policy(name): teacher_step(p)) for name in args.policies})
    for fn in runs.values():  # warm-up
        fn()
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    best = {name: (min(wall[name]), min(cpu[name])) for name in runs}
    memory = {} if args.no_memory else {name: peak_bytes(fn, torch.device("cpu")) for name, fn in runs.items()}
    ce, dyn = best["plain CE"], best["plain dynamic"]
    print(f"T={T}, best of {args.repeats} interleaved rounds; ratios: wall (CPU time)")
    for name in runs:
        line = f"{name:>14}: {best[name][0]:.3f} s wall, {best[name][1]:.3f} s CPU"
        if not name.startswith("plain"):
            line += (f"; {best[name][0] / ce[0]:.2f}x ({best[name][1] / ce[1]:.2f}x) plain CE, "
                     f"{best[name][0] / dyn[0]:.2f}x ({best[name][1] / dyn[1]:.2f}x) plain dynamic")
        if memory:
            line += f"; peak {memory[name] / 2**20:.1f} MiB"
            if not name.startswith("plain"):
                line += f" ({memory[name] / memory['keep-all']:.3f}x keep-all)"
        print(line)


if __name__ == "__main__":
    main()
