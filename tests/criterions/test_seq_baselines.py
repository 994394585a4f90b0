"""softmax_margin, reinforce_bleu, actor_critic_bleu against their formulas written out per
candidate (BLEU by sacrebleu, log-probabilities one sentence at a time), and the pure maths."""

import pytest
import torch

from fairseq_dynloss.losses.actor_critic import intermediate_rewards, td_targets
from fairseq_dynloss.losses.sequence_level import softmax_margin_loss

from tiny_fairseq import TINY_TRANSFORMER, build, first_batch
from test_expected_bleu_criterion import (
    fixed_candidates,
    sacre_bleu,
    token_logprobs_one,
    use_candidates,
    words,
)


def test_softmax_margin_equals_formula(toy_data_bin, monkeypatch):
    task, model, criterion = build(toy_data_bin / "data-bin", "softmax_margin", "--seq-candidates", "3",
                                   "--margin-cost-scale", "2.0")
    d = task.target_dictionary
    sample = first_batch(task)
    tokens = fixed_candidates(task, sample, 3, seed=4)
    use_candidates(monkeypatch, tokens)
    loss, _, log = criterion(model, sample)
    expected = 0.0
    for i, ref in enumerate(sample["target"]):
        cands = list(tokens[i]) + [ref]
        scores = torch.stack([token_logprobs_one(model, sample, i, c, d).sum() for c in cands])
        costs = torch.tensor([1 - sacre_bleu(c, ref, d) / 100 for c in cands])
        expected = expected + torch.logsumexp(scores + 2.0 * costs, 0) - scores[-1]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    assert loss.item() > 0


def test_softmax_margin_is_zero_cost_nll_when_target_dominates():
    scores = torch.tensor([[-50.0, -60.0, -1.0]], dtype=torch.float64)
    costs = torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64)
    assert softmax_margin_loss(scores, costs).item() == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="cost_scale=-1"):
        softmax_margin_loss(scores, costs, cost_scale=-1)


@pytest.mark.parametrize("baseline", ["average", "learned"])
def test_reinforce_equals_formula(toy_data_bin, monkeypatch, baseline):
    task, model, criterion = build(toy_data_bin / "data-bin", "reinforce_bleu", "--seq-candidates", "3",
                                   "--reinforce-baseline", baseline, "--decoder-state-dim", "16",
                                   "--baseline-loss-weight", "0.5")
    d = task.target_dictionary
    sample = first_batch(task)
    tokens = fixed_candidates(task, sample, 3, seed=2)
    use_candidates(monkeypatch, tokens)
    if baseline == "learned":
        with torch.no_grad():
            criterion.baseline.weight.normal_(0, 0.1)
            criterion.baseline.bias.fill_(0.05)
    loss, _, log = criterion(model, sample)
    batch = sample["target"].size(0)
    rewards = torch.tensor([[sacre_bleu(c, ref, d) / 100 for c in tokens[i]]
                            for i, ref in enumerate(sample["target"])])
    mean_reward = rewards.mean()
    expected = 0.0
    for i in range(batch):
        for k in range(3):
            logp = token_logprobs_one(model, sample, i, tokens[i, k], d)
            if baseline == "average":
                expected = expected - (rewards[i, k] - mean_reward) * logp.sum() / 3
            else:
                cand = tokens[i, k][tokens[i, k] != d.pad()]
                src = sample["net_input"]["src_tokens"][i : i + 1]
                src = src[:, src[0] != d.pad()]
                prev = torch.cat([torch.tensor([d.eos()]), cand[:-1]])[None]
                enc = model.encoder(src, src_lengths=torch.tensor([src.size(1)]))
                states = model.decoder(prev, encoder_out=enc, features_only=True)[0][0]
                b = criterion.baseline(states).squeeze(-1)
                expected = expected - ((rewards[i, k] - b.detach()) * logp).sum() / 3
                expected = expected + 0.5 * ((b - rewards[i, k]) ** 2).sum() / 3
    torch.testing.assert_close(loss, expected.to(loss.dtype), rtol=1e-5, atol=1e-5)
    assert log["reward"].item() == pytest.approx(rewards.mean(1).sum().item(), rel=1e-6)


def test_reinforce_learned_baseline_is_optimised_by_fairseq_trainer(toy_data_bin):
    from fairseq.trainer import Trainer
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_dynloss.user_dir import USER_DIR
    from fairseq import tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(toy_data_bin / "data-bin"), "--user-dir", USER_DIR, "--task", "translation", "--cpu",
        *TINY_TRANSFORMER, "--criterion", "reinforce_bleu", "--reinforce-baseline", "learned",
        "--decoder-state-dim", "16", "--optimizer", "adam", "--lr", "0.01"])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    optimised = {id(p) for group in trainer.optimizer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in criterion.parameters()} <= optimised
    before = criterion.baseline.bias.detach().clone()
    trainer.train_step([first_batch(task)])
    assert not torch.equal(before, criterion.baseline.bias.detach())


def test_actor_critic_equals_formula(toy_data_bin, monkeypatch):
    task, model, criterion = build(toy_data_bin / "data-bin", "actor_critic_bleu", "--seq-candidates", "2",
                                   "--decoder-state-dim", "16", "--critic-variance-penalty", "0.01",
                                   "--critic-loss-weight", "0.5")
    d = task.target_dictionary
    sample = first_batch(task, max_sentences=3)
    tokens = fixed_candidates(task, sample, 2, seed=3)
    use_candidates(monkeypatch, tokens)
    with torch.no_grad():
        criterion.critic.weight.normal_(0, 0.1)
        criterion.critic.bias.normal_(0, 0.1)
    loss, _, log = criterion(model, sample)
    expected = 0.0
    for i, ref in enumerate(sample["target"]):
        for k in range(2):
            cand = tokens[i, k][tokens[i, k] != d.pad()]
            src = sample["net_input"]["src_tokens"][i : i + 1]
            src = src[:, src[0] != d.pad()]
            prev = torch.cat([torch.tensor([d.eos()]), cand[:-1]])[None]
            enc = model.encoder(src, src_lengths=torch.tensor([src.size(1)]))
            features, extra = model.decoder(prev, encoder_out=enc, features_only=True)
            probs = model.get_normalized_probs((model.decoder.output_layer(features), extra), log_probs=False)[0]
            q = criterion.critic(features[0])
            prefix = [sacre_bleu(cand[: t + 1], ref, d) / 100 for t in range(len(cand))]
            rewards = [prefix[0]] + [prefix[t] - prefix[t - 1] for t in range(1, len(cand))]
            values = (probs * q).sum(-1).detach()
            actor = -(probs * q.detach()).sum()
            critic = 0.0
            for t in range(len(cand)):
                target = rewards[t] + (values[t + 1] if t + 1 < len(cand) else 0.0)
                critic = critic + (q[t, cand[t]] - target) ** 2
                critic = critic + 0.01 * ((q[t] - q[t].mean()) ** 2).sum()
            expected = expected + (actor + 0.5 * critic) / 2
    torch.testing.assert_close(loss, expected.to(loss.dtype), rtol=1e-4, atol=1e-5)


def test_intermediate_rewards_telescope_and_td_targets():
    prefix = torch.tensor([[0.1, 0.3, 0.3, 0.0], [0.5, 0.2, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    rewards = intermediate_rewards(prefix, mask)
    torch.testing.assert_close(rewards.sum(-1), torch.tensor([0.3, 0.2], dtype=torch.float64))
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], dtype=torch.float64)
    targets = td_targets(rewards, values, mask)
    expected = torch.tensor([[0.1 + 2.0, 0.2 + 3.0, 0.0, 0.0], [0.5 + 6.0, -0.3, 0.0, 0.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(targets, expected)


def test_words_helper_strips_specials(toy_data_bin):
    task, _, _ = build(toy_data_bin / "data-bin", "softmax_margin")
    d = task.target_dictionary
    assert words(torch.tensor([7, 8, d.eos(), d.pad()]), d) == "7 8"
