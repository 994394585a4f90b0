"""--criterion dynamic_loss --phi-source ala with --task translation_ala, in process: options,
the validation measurement (state, dev loss, dev BLEU), the controller's windows, and its state."""

import csv

import pytest
import sacrebleu
import torch

import fairseq  # noqa: F401  (import before the plugin so it registers with fairseq)
import fairseq_dynloss

# Explicitly: if another test module imported the package before fairseq, its import-time
# registration did not run (idempotent).
fairseq_dynloss.register_with_fairseq()
from fairseq_dynloss.controllers import ControllerError, load_controller
from fairseq_dynloss.losses import PhiError

import tiny_fairseq

ALA = ("--task", "translation_ala", "--phi-source", "ala", "--phi-parametrisation", "bucketed",
       "--phi-buckets", "4", "--max-update", "100")


def build(data_bin, *extra, save_dir=None):
    """task, model, criterion of a tiny transformer under translation_ala (the later flags win)."""
    save = ("--save-dir", str(save_dir)) if save_dir is not None else ()
    return tiny_fairseq.build(data_bin, "dynamic_loss", *ALA, *save, *extra)


def load_subset(task):
    task.dev_samples = task._load_dev_samples(torch.device("cpu"))
    return task.dev_samples


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_registered_names():
    from fairseq.tasks import TASK_REGISTRY
    from fairseq_dynloss.criterions.dynamic_loss import PHI_SOURCES

    assert TASK_REGISTRY["translation_ala"].__module__ == "fairseq_dynloss.tasks.translation_ala"
    assert "ala" in PHI_SOURCES


@pytest.mark.parametrize("extra, message", [
    (["--ala-beta", "0"], "--ala-beta: beta=0.0; expected a finite step size > 0"),
    (["--ala-beta", "-0.5"], "--ala-beta: beta=-0.5"),
    (["--ala-interval", "0"], "--ala-interval: window K=0; expected an integer >= 1"),
    (["--ala-gamma", "1.5"], "--ala-gamma: gamma=1.5; expected a discount in"),
    (["--ala-val-batches", "0"], "--ala-val-batches=0; expected an integer >= 1"),
    (["--ala-clamp", "-0.1"], "--ala-clamp=-0.1; expected a finite number >= 0"),
    (["--ala-baseline-decay", "1"], "--ala-baseline-decay=1.0; expected a value in"),
    (["--phi-parametrisation", "diag_lowrank"], "controls a bucketed Phi .* got --phi-parametrisation diag_lowrank"),
    (["--phi-parametrisation", "full"], "got --phi-parametrisation full"),
    (["--phi-source", "fixed"], "use --phi-source ala \\(got --phi-source fixed\\)"),
    (["--max-update", "0"], "needs --max-update > 0 \\(got 0\\) or --ala-horizon"),
    (["--ala-horizon", "-1"], "--ala-horizon=-1; expected an integer >= 0"),
    (["--ala-replay-capacity", "-1"], "--ala-replay-capacity=-1; expected an integer >= 0"),
    (["--ala-hold", "0"], "--ala-hold=0; expected an integer >= 1"),
    (["--dynamic-form", "prob", "--ala-clamp", "0.1"], "--ala-clamp=0.1 bounds W = .* under --dynamic-form paper"),
    (["--ala-entropy-bonus", "-1"], r"--ala-entropy-bonus=-1.0; expected a value in \[0.0, inf\]"),
    (["--ala-interval", "4", "--ala-metric-every", "3"],
     "--ala-metric-every: metric_every=3 does not divide window K=4; expected a divisor of K"),
    (["--ala-metric-every", "0"], "--ala-metric-every: metric_every=0; expected an integer >= 1"),
])
def test_bad_options_fail_clearly(toy_data_bin, extra, message):
    with pytest.raises((ControllerError, PhiError), match=message):
        build(toy_data_bin / "data-bin", *extra)


def test_phi_source_ala_needs_the_ala_task(toy_data_bin):
    with pytest.raises(PhiError, match="--phi-source ala needs --task translation_ala .*; got --task translation$"):
        tiny_fairseq.build(toy_data_bin / "data-bin", "dynamic_loss", "--phi-source", "ala",
                           "--phi-parametrisation", "bucketed")


def test_ala_task_needs_the_dynamic_loss(toy_data_bin):
    with pytest.raises(PhiError, match="--task translation_ala needs --criterion dynamic_loss; got LabelSmoothed"):
        tiny_fairseq.build(toy_data_bin / "data-bin", "label_smoothed_cross_entropy", "--task", "translation_ala",
                           "--max-update", "100")


def test_unknown_reward_metric(toy_data_bin, capsys):
    from fairseq_dynloss.tasks.translation_ala import TranslationALAConfig, check_ala_options

    with pytest.raises(SystemExit):  # the command line: argparse lists the choices
        build(toy_data_bin / "data-bin", "--ala-reward", "error")
    assert "invalid choice: 'error'" in capsys.readouterr().err
    with pytest.raises(ControllerError, match="--ala-reward='error'; expected one of \\['loss', 'bleu'\\]"):
        check_ala_options(TranslationALAConfig(ala_reward="error"))  # a yaml config skips argparse


def test_measure_equals_a_hand_computation(toy_data_bin):
    """Dev NLL per target token and C_gh = mean_{y in g} mean_{j in h} -log p_j, token by token."""
    task, model, criterion = build(toy_data_bin / "data-bin", "--ala-reward", "loss", "--ala-val-batches", "2",
                                   "--ala-val-max-sentences", "5")
    samples = load_subset(task)
    # 2 x 5 sentences drawn with --seed (1), not the shortest ones fairseq's iterator starts with.
    assert len(samples) == 2 and all(s["target"].size(0) == 5 for s in samples)
    draw = torch.randperm(len(task.dataset("valid")), generator=torch.Generator().manual_seed(1))[:10]
    assert sorted(int(i) for s in samples for i in s["id"]) == sorted(draw.tolist())
    model.train()
    value, C = task.measure(model, with_state=True)
    assert model.training  # restored after the eval-mode pass
    bucket_of = criterion.phi.bucket_of
    G = criterion.phi.num_buckets
    sums, counts, nll, tokens = torch.zeros(G, G, dtype=torch.float64), torch.zeros(G), 0.0, 0
    model.eval()
    with torch.no_grad():
        for sample in samples:
            lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True).double()
            for b in range(sample["target"].size(0)):
                for t in range(sample["target"].size(1)):
                    y = int(sample["target"][b, t])
                    if y == task.tgt_dict.pad():
                        continue
                    nll -= lprobs[b, t, y].item()
                    tokens += 1
                    g = int(bucket_of[y])
                    counts[g] += 1
                    for h in range(G):
                        sums[g, h] -= lprobs[b, t][bucket_of == h].mean()
    assert value == pytest.approx(nll / tokens, rel=1e-6)
    assert tuple(C.shape) == (G, G) and (counts > 0).all()
    torch.testing.assert_close(C.double(), sums / counts[:, None], rtol=1e-5, atol=1e-5)
    value_only, no_state = task.measure(model, with_state=False)
    assert value_only == value and no_state is None


def test_bleu_reward_equals_sacrebleu_on_greedy_translations(toy_data_bin):
    from argparse import Namespace

    task, model, _ = build(toy_data_bin / "data-bin", "--ala-reward", "bleu", "--ala-val-batches", "2",
                           "--ala-val-max-sentences", "8")
    samples = load_subset(task)
    # Fit the subset a little so that the greedy translations share n-grams with the references.
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(40):
        for sample in samples:
            lprobs = model.get_normalized_probs(model(**sample["net_input"]), log_probs=True)
            loss = torch.nn.functional.nll_loss(lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1),
                                                ignore_index=task.tgt_dict.pad())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    value, _ = task.measure(model, with_state=False)
    generator = task.build_generator([model], Namespace(beam=1, max_len_a=1.2, max_len_b=10))
    special = {task.tgt_dict.pad(), task.tgt_dict.eos()}
    words = lambda ids: " ".join(str(i) for i in ids.tolist() if i not in special)
    hyps, refs = [], []
    model.eval()
    for sample in samples:
        for nbest, ref in zip(generator.generate([model], sample), sample["target"]):
            hyps.append(words(nbest[0]["tokens"]))
            refs.append(words(ref))
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score
    assert expected > 5.0, "the fitted model should translate part of its subset"
    assert value == pytest.approx(expected, abs=1e-6)


def test_windows_move_w_and_record_rewards(toy_data_bin, tmp_path):
    """A frozen student: a constant dev loss gives reward 0; W moves by beta per action."""
    task, model, criterion = build(toy_data_bin / "data-bin", "--ala-reward", "loss", "--ala-interval", "2",
                                   "--ala-val-batches", "1", save_dir=tmp_path)
    controller = task.controller
    sizes = criterion.phi.bucket_onehot.sum(0)
    assert controller.beta == pytest.approx(0.1 / 4)  # base / sqrt(G^2)
    rng = torch.get_rng_state()
    rows = [task.after_update(model, u) for u in range(1, 7)]
    assert torch.equal(torch.get_rng_state(), rng)  # measuring never moves the training RNG
    assert [r is None for r in rows] == [True, False] * 3
    rows = [r for r in rows if r is not None]
    assert [r["update"] for r in rows] == [2, 4, 6]
    assert [r["reward"] for r in rows] == ["", 0.0, 0.0]
    W = controller.target.values()
    torch.testing.assert_close(W, criterion.phi.B.double() * sizes.double())
    steps = W / controller.beta  # three windows of +-beta, never clamped (3 beta < 0.1)
    torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-4)
    assert steps.abs().max() <= 3 and steps.abs().sum() > 0
    assert steps.sum().round() == sum(r["actions_plus"] - r["actions_minus"] for r in rows)
    assert controller.memory is None and controller.transitions == 2 and controller.learner.num_updates == 2
    written = read_rows(tmp_path / "ala_log.csv")
    assert [int(r["update"]) for r in written] == [2, 4, 6]
    saved = load_controller(str(tmp_path / "ala_controller.pt"), expected_feature_size=controller.feature_size)
    for name, value in controller.policy.state_dict().items():
        assert torch.equal(saved.policy.state_dict()[name], value)
    assert saved.extra["num_elements"] == 16


def test_metric_every_measures_every_nth_update_and_discounts_by_gamma_to_the_n(toy_data_bin, tmp_path):
    """K = 4, n = 2: the student is measured after updates 2, 4, 6, 8 only; the window metric of
    updates 5-8 is gamma^2 M_6 + M_8 (the slides' weights gamma^(K-j) at j = 6, 8)."""
    task, model, _ = build(toy_data_bin / "data-bin", "--ala-reward", "loss", "--ala-interval", "4",
                           "--ala-metric-every", "2", "--ala-gamma", "0.5", "--ala-val-batches", "1",
                           save_dir=tmp_path)
    measured, state = [], torch.rand(4, 4) + 1.0
    task.dev_samples = []  # no subset to load: measure is replaced below

    def measure(model, with_state):
        measured.append((task_update[0], with_state))
        return float(task_update[0]), (state if with_state else None)

    task.measure, task_update = measure, [0]
    rows = []
    for u in range(1, 9):
        task_update[0] = u
        rows.append(task.after_update(model, u))
    assert measured == [(2, False), (4, True), (6, False), (8, True)]
    assert [r is None for r in rows] == [True] * 3 + [False] + [True] * 3 + [False]
    assert rows[3]["window_metric"] == pytest.approx(0.25 * 2 + 4)
    assert rows[7]["window_metric"] == pytest.approx(0.25 * 6 + 8)
    assert rows[7]["reward"] == -1.0  # the dev loss rose: lower is better


def test_clamp_bounds_w(toy_data_bin):
    task, _, criterion = build(toy_data_bin / "data-bin", "--ala-interval", "1", "--ala-beta", "0.4",
                               "--ala-clamp", "0.15")
    state = torch.rand(4, 4) + 1.0
    for u in range(1, 8):  # beta = 0.1 per window: the clamp binds after two steps
        task.controller.observe(1.0 / u, state, u / 100, u)
    W = task.controller.target.values()
    assert W.abs().max() <= 0.15 + 1e-6 and (W.abs() > 0.149).any()


def test_state_dict_resumes_the_controller_exactly(toy_data_bin):
    """Round trip through torch.save / weights_only load mid-window, then the same future."""
    import io

    data = toy_data_bin / "data-bin"
    metric = [5.0] * 3 + [4.0] * 3 + [6.0] * 3 + [3.0] * 3 + [7.0] * 2  # rewards +1, -1, +1
    states = [torch.rand(4, 4, generator=torch.Generator().manual_seed(u)) + 2.0 for u in range(1, 15)]

    def feed(controller, updates):
        return [controller.observe(metric[u - 1], states[u - 1] if controller.window_ends() else None, u / 100, u)
                for u in updates]

    straight, _, straight_criterion = build(data, "--ala-reward", "loss", "--ala-interval", "3", "--ala-replay-capacity", "2", "--ala-replay-batch", "2")
    feed(straight.controller, range(1, 15))
    first, _, _ = build(data, "--ala-reward", "loss", "--ala-interval", "3", "--ala-replay-capacity", "2", "--ala-replay-batch", "2")
    feed(first.controller, range(1, 8))  # stops inside the third window
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed, _, resumed_criterion = build(data, "--ala-reward", "loss", "--ala-interval", "3", "--ala-replay-capacity", "2", "--ala-replay-batch", "2")
    resumed.load_state_dict(state)
    feed(resumed.controller, range(8, 15))
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop_time(resumed.controller.rows) == drop_time(straight.controller.rows)
    assert [r["reward"] for r in straight.controller.rows] == ["", 1.0, -1.0, 1.0]
    assert torch.equal(resumed_criterion.phi.B, straight_criterion.phi.B)
    for name, value in straight.controller.policy.state_dict().items():
        assert torch.equal(resumed.controller.policy.state_dict()[name], value)


def test_state_of_another_run_shape_is_refused(toy_data_bin):
    data = toy_data_bin / "data-bin"
    task, _, _ = build(data)
    other, _, _ = build(data, "--ala-history", "1")
    with pytest.raises(ControllerError, match="feature_size=9; this run has 11"):
        task.load_state_dict(other.state_dict())
