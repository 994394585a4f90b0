#!/usr/bin/env python
"""Cost of a long L2T-DLF unroll on the MNIST-1D MLP: one teacher hypergradient through T steps
(keep-all vs checkpointed) against T plain training steps, time and peak tensor memory.

    OMP_NUM_THREADS=1 python scripts/bench_long_unroll.py --unroll 200

The student is ``model=mnist1d_mlp`` on ``task=mnist1d`` (batch 100) under the prob-form dynamic
loss with a gated teacher (Phi_t = teacher(s_t), s_t from the unroll's StudentStateTracker), Adam
lr 1e-2 as the reference recipe. Targets (issue 16): checkpointed T >= 200 at most 4x the time of
T plain steps and at most 0.15x the keep-all memory. Best of ``--repeats`` for times.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from fairseq_dynloss.hypergrad import Adam, FunctionalModule
from fairseq_dynloss.losses import build_phi
from fairseq_dynloss.teacher import StudentStateTracker, TeacherLearner, build_teacher
from fairseq_dynloss.trainer.l2t import UnrollState, objective_loss
from fairseq_dynloss.trainer.registry import build_net, build_splits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_hypergrad import peak_bytes  # noqa: E402

CONF = os.path.join(os.path.dirname(__file__), "..", "fairseq_dynloss", "trainer", "conf")


class ProbObjective:
    """The settings objective_loss reads (prob form, no NLL mixing)."""

    def __init__(self, num_classes):
        self.phi = build_phi("full", num_classes)
        self.scale, self.nll_weight, self.label_smoothing, self.form = 1.0, 0.0, 0.0, "prob"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unroll", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("DYNLOSS_DATA", "data"))
    args = parser.parse_args(argv)
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

        def student_loss(p, phi_tensors, batch):
            step, x, y = batch
            lprobs = F.log_softmax(student(p, x), dim=1)
            state.observe(step, lprobs, y)
            return objective_loss(objective, lprobs, y, phi_tensors)

        return learner.step(student_loss, lambda p: -F.cross_entropy(student(p, x_dev), y_dev), params, batches,
                            state)

    def plain_steps():
        live = build_net(model, splits.input_shape, C)
        opt = torch.optim.Adam(live.parameters(), lr=1e-2)
        for _, x, y in batches:
            loss = F.cross_entropy(live(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def best_time(fn):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    plain = best_time(plain_steps)
    print(f"T={T} plain steps: {plain:.3f} s, peak {peak_bytes(plain_steps, torch.device('cpu')) / 2**20:.1f} MiB")
    results = {}
    for name, policy in (("keep-all", None), ("checkpoint sqrt", "sqrt"), ("checkpoint 1", 1)):
        seconds = best_time(lambda: teacher_step(policy))
        memory = peak_bytes(lambda: teacher_step(policy), torch.device("cpu"))
        results[name] = (seconds, memory)
        print(f"T={T} teacher step, {name}: {seconds:.3f} s ({seconds / plain:.2f}x plain), "
              f"peak {memory / 2**20:.1f} MiB ({memory / results['keep-all'][1]:.3f}x keep-all)")


if __name__ == "__main__":
    main()
