"""dynamic_loss: hand values, gradcheck, batch = sum of items, padding invariance, NLL parts."""

import math

import pytest
import torch

from fairseq_dynloss.losses import BucketedPhi, DiagLowRankPhi, FullPhi, build_phi, default_scale, dynamic_loss

pytestmark = pytest.mark.usefixtures("float64_default")


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_full_phi_hand_values():
    # p = (0.5, 0.3, 0.2), target 0, Phi row 0 = (1, 0.5, 0): u = log .5 + .5 log .3
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    target = torch.tensor([0, 2])
    phi = FullPhi(3).double()
    phi.load_tensors({"matrix": torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 2.0]])})
    u0 = math.log(0.5) + 0.5 * math.log(0.3)
    u1 = -math.log(0.1) + 2 * math.log(0.3)
    out = dynamic_loss(lprobs, target, phi, scale=0.5, reduce=False)
    torch.testing.assert_close(out.dynamic, torch.tensor([-sigmoid(0.5 * u0), -sigmoid(0.5 * u1)]))
    torch.testing.assert_close(out.loss, out.dynamic)
    torch.testing.assert_close(out.nll_loss, torch.tensor([-math.log(0.5), -math.log(0.3)]))
    torch.testing.assert_close(out.sigmoid_arg, torch.tensor([0.5 * u0, 0.5 * u1]))


def test_diag_lowrank_hand_values():
    # Phi = diag(2, 1, 1) + u v^T with u = (1, 0, 0), v = (0, 1, 1): row 0 = (2, 1, 1).
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    phi = DiagLowRankPhi(3, rank=1).double()
    phi.load_tensors({"diag": torch.tensor([2.0, 1.0, 1.0]), "U": torch.tensor([[1.0], [0.0], [0.0]]),
                      "V": torch.tensor([[0.0], [1.0], [1.0]])})
    u = 2 * math.log(0.5) + math.log(0.3) + math.log(0.2)
    out = dynamic_loss(lprobs, torch.tensor([0]), phi, scale=1.0)
    assert out.loss.item() == pytest.approx(-sigmoid(u), rel=1e-12)


def test_bucketed_hand_values():
    # buckets g = (0, 1, 1); target 1 (bucket 1): u = d_1 log p_1 + B[1,0] S_0 + B[1,1] S_1
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    phi = BucketedPhi(3, torch.tensor([0, 1, 1])).double()
    phi.load_tensors({"diag": torch.tensor([1.0, 3.0, 1.0]), "B": torch.tensor([[0.0, 0.0], [0.5, -0.25]])})
    u = 3 * math.log(0.3) + 0.5 * math.log(0.5) - 0.25 * (math.log(0.3) + math.log(0.2))
    out = dynamic_loss(lprobs, torch.tensor([1]), phi, scale=0.1)
    assert out.loss.item() == pytest.approx(-sigmoid(0.1 * u), rel=1e-12)


def test_identity_phi_is_minus_sigmoid_of_log_p():
    lprobs = torch.log_softmax(torch.randn(5, 4), -1)
    target = torch.tensor([0, 1, 2, 3, 0])
    for name in ("full", "diag_lowrank", "bucketed"):
        phi = build_phi(name, 4, rank=2, num_buckets=2).double()
        out = dynamic_loss(lprobs, target, phi, scale=1.0, reduce=False)
        torch.testing.assert_close(out.loss, -torch.sigmoid(lprobs[torch.arange(5), target]))


def test_nll_mix_and_label_smoothing_match_fairseq():
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    lprobs = torch.log_softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), -1)
    target = torch.tensor([0, 1, 4, 1, 3, 2])
    phi = build_phi("full", 5).double()
    ref_loss, ref_nll = label_smoothed_nll_loss(lprobs, target, 0.1, ignore_index=2)
    pure = dynamic_loss(lprobs, target, phi, nll_weight=1.0, label_smoothing=0.1, ignore_index=2)
    torch.testing.assert_close(pure.loss, ref_loss)
    torch.testing.assert_close(pure.nll_loss, ref_nll)
    mixed = dynamic_loss(lprobs, target, phi, scale=0.3, nll_weight=0.25, label_smoothing=0.1, ignore_index=2)
    torch.testing.assert_close(mixed.loss, 0.25 * ref_loss + 0.75 * mixed.dynamic)


@pytest.mark.parametrize("name", ["full", "diag_lowrank", "bucketed"])
def test_gradcheck_wrt_logits_and_phi(name):
    torch.manual_seed(0)
    phi = build_phi(name, 5, rank=2, num_buckets=2, learnable=True).double()
    with torch.no_grad():
        for tensor in phi.tensors().values():
            tensor.add_(0.3 * torch.randn_like(tensor))
    logits = torch.randn(4, 5, requires_grad=True)
    target = torch.tensor([0, 3, 1, 4])
    names = list(phi.tensors())

    def f(logits, *tensors):
        # functional_call swaps Phi's tensors for the gradcheck inputs during the call.
        loss_module = _LossModule(phi)
        swapped = {f"phi.{key}": value for key, value in zip(names, tensors)}
        return torch.func.functional_call(loss_module, swapped, (torch.log_softmax(logits, -1), target))

    inputs = (logits,) + tuple(t.detach().clone().requires_grad_(True) for t in phi.tensors().values())
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


class _LossModule(torch.nn.Module):
    def __init__(self, phi):
        super().__init__()
        self.phi = phi

    def forward(self, lprobs, target):
        return dynamic_loss(lprobs, target, self.phi, scale=0.7, nll_weight=0.3,
                            label_smoothing=0.1, ignore_index=1).loss


@pytest.mark.parametrize("name", ["full", "diag_lowrank", "bucketed"])
def test_batch_equals_sum_of_items(name):
    phi = build_phi(name, 6, rank=2, num_buckets=3).double()
    with torch.no_grad():
        for tensor in phi.tensors().values():
            tensor.add_(0.5 * torch.randn_like(tensor))
    lprobs = torch.log_softmax(torch.randn(8, 6), -1)
    target = torch.randint(0, 6, (8,))
    batch = dynamic_loss(lprobs, target, phi, scale=0.4, nll_weight=0.2, label_smoothing=0.1)
    items = [dynamic_loss(lprobs[i : i + 1], target[i : i + 1], phi, scale=0.4, nll_weight=0.2,
                          label_smoothing=0.1) for i in range(8)]
    torch.testing.assert_close(batch.loss, sum(item.loss for item in items))
    torch.testing.assert_close(batch.nll_loss, sum(item.nll_loss for item in items))


@pytest.mark.parametrize("name", ["full", "diag_lowrank", "bucketed"])
def test_padding_changes_nothing(name):
    pad = 1
    phi = build_phi(name, 6, rank=2, num_buckets=3).double()
    with torch.no_grad():
        for tensor in phi.tensors().values():
            tensor.add_(0.5 * torch.randn_like(tensor))
    logits = torch.randn(5, 6, requires_grad=True)
    target = torch.tensor([0, 2, 3, 5, 4])
    clean = dynamic_loss(torch.log_softmax(logits, -1), target, phi, scale=0.4, ignore_index=pad)
    (grad_clean,) = torch.autograd.grad(clean.loss, logits)
    # Append padded positions with arbitrary (even extreme) logits.
    junk = torch.randn(3, 6) * 50
    padded_logits = torch.cat([logits, junk])
    padded = dynamic_loss(torch.log_softmax(padded_logits, -1), torch.cat([target, torch.full((3,), pad)]),
                          phi, scale=0.4, ignore_index=pad)
    (grad_padded,) = torch.autograd.grad(padded.loss, logits)
    torch.testing.assert_close(padded.loss, clean.loss)
    torch.testing.assert_close(grad_padded, grad_clean)
    assert torch.all(padded.sigmoid_arg[5:] == 0)


def test_default_scale_keeps_uniform_prediction_out_of_saturation():
    for num_classes in (10, 100, 8000, 32000):
        s = default_scale(num_classes)
        assert s == pytest.approx(1 / math.sqrt(num_classes))
        # At a uniform prediction u = -log C; s * u stays within the sigmoid's linear range.
        assert abs(s * math.log(num_classes)) < 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(nll_weight=1.5), "nll_weight=1.5"),
    (dict(nll_weight=-0.1), "nll_weight=-0.1"),
    (dict(label_smoothing=1.0), "label_smoothing=1.0"),
])
def test_bad_options(kwargs, message):
    phi = build_phi("full", 3).double()
    with pytest.raises(ValueError, match=message):
        dynamic_loss(torch.log_softmax(torch.randn(2, 3), -1), torch.tensor([0, 1]), phi, **kwargs)


def test_shape_mismatch_errors():
    phi = build_phi("full", 4).double()
    with pytest.raises(ValueError, match="lprobs has 3 classes but Phi has 4"):
        dynamic_loss(torch.randn(2, 3), torch.tensor([0, 1]), phi)
    with pytest.raises(ValueError, match=r"expected lprobs \(N, C\) and target \(N,\)"):
        dynamic_loss(torch.randn(2, 4), torch.tensor([0, 1, 2]), phi)
