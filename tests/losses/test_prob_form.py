"""form="prob" of dynamic_loss: CE at M = I, forward correction at M = T, every parametrisation
against its materialised matrix, gradcheck, padding / batch invariance, extreme logits, bad Phi."""

import math

import pytest
import torch
import torch.nn.functional as F

from fairseq_dynloss.losses import (
    BucketedPhi, DiagLowRankPhi, FullPhi, PhiError, build_phi, dynamic_loss, load_phi_file,
    phi_from_logits,
)

pytestmark = pytest.mark.usefixtures("float64_default")

C = 5


def pairflip(rate, num_classes=C):
    eye = torch.eye(num_classes)
    return (1 - rate) * eye + rate * torch.roll(eye, 1, dims=1)


def phi_equal_to(T, parametrisation):
    """A Phi of the given parametrisation whose prob_matrix() is T (pair-flip T for the low-rank
    and bucketed ones: diag(1 - r) + r P = diag + U V^T with U = r P, V = I; one class per bucket)."""
    n = T.size(0)
    if parametrisation == "full":
        phi = FullPhi(n)
        phi.load_tensors({"matrix": T}, form="prob")
    elif parametrisation == "diag_lowrank":
        phi = DiagLowRankPhi(n, rank=n)
        off = T - torch.diag(T.diagonal())
        phi.load_tensors({"diag": T.diagonal().clone(), "U": off, "V": torch.eye(n)}, form="prob")
    else:
        phi = BucketedPhi(n, torch.arange(n))
        phi.load_tensors({"diag": torch.zeros(n), "B": T}, form="prob")
    torch.testing.assert_close(phi.prob_matrix(), T)
    return phi


def random_phi(parametrisation, generator):
    """Non-negative random tensors; uneven buckets so the per-bucket mean matters."""
    if parametrisation == "full":
        phi = FullPhi(C)
    elif parametrisation == "diag_lowrank":
        phi = DiagLowRankPhi(C, rank=2)
    else:
        phi = BucketedPhi(C, torch.tensor([0, 1, 1, 1, 0]))
    phi.load_tensors({k: torch.rand(v.shape, generator=generator) for k, v in phi.tensors().items()},
                     form="prob")
    return phi


PARAMS = ("full", "diag_lowrank", "bucketed")


def test_hand_values():
    # p = (0.5, 0.3, 0.2); M = I: -log p_y. M column 0 = (0.6, 0.4, 0): -log(0.5*0.6 + 0.3*0.4).
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    target = torch.tensor([0, 2])
    out = dynamic_loss(lprobs, target, FullPhi(3).double(), form="prob", reduce=False)
    torch.testing.assert_close(out.loss, torch.tensor([-math.log(0.5), -math.log(0.2)]))
    phi = FullPhi(3).double()
    phi.load_tensors({"matrix": torch.tensor([[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.0, 0.5, 0.5]])},
                     form="prob")
    out = dynamic_loss(lprobs, target, phi, form="prob", reduce=False)
    torch.testing.assert_close(out.dynamic, torch.tensor([-math.log(0.42), -math.log(0.1)]))
    assert torch.all(out.sigmoid_arg == 0)


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_identity_is_cross_entropy(parametrisation):
    logits = torch.randn(7, C, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    phi = build_phi(parametrisation, C, rank=2, num_buckets=2).double()
    out = dynamic_loss(F.log_softmax(logits, -1), target, phi, form="prob", reduce=False)
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, target, reduction="none"))


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_noise_matrix_is_forward_correction(parametrisation):
    logits = torch.randn(7, C, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    T = pairflip(0.4)
    phi = phi_equal_to(T, parametrisation)
    out = dynamic_loss(F.log_softmax(logits, -1), target, phi, form="prob", reduce=False)
    forward = -torch.log(torch.softmax(logits, -1) @ T)[torch.arange(7), target]
    torch.testing.assert_close(out.loss, forward)


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_parametrisation_equals_its_materialised_full_phi(parametrisation):
    generator = torch.Generator().manual_seed(2)
    phi = random_phi(parametrisation, generator)
    full = FullPhi(C)
    full.load_tensors({"matrix": phi.prob_matrix()}, form="prob")
    lprobs = F.log_softmax(torch.randn(9, C, generator=generator), -1)
    target = torch.randint(0, C, (9,), generator=generator)
    mine = dynamic_loss(lprobs, target, phi, form="prob", reduce=False)
    dense = dynamic_loss(lprobs, target, full, form="prob", reduce=False)
    naive = -torch.log(lprobs.exp() @ phi.prob_matrix())[torch.arange(9), target]
    torch.testing.assert_close(mine.loss, naive)
    torch.testing.assert_close(dense.loss, naive)
    torch.testing.assert_close(phi.prob_diagonal(), phi.prob_matrix().diagonal())
    torch.testing.assert_close(phi.prob_column_sums(), phi.prob_matrix().sum(0))


def test_bucketed_uses_the_per_bucket_mean():
    # buckets (0, 1, 1): M[j, y] = d_j [j = y] + B[g(j), g(y)] / |g(j)|; label 0 gets B[1, 0]
    # times the mean of p_1 and p_2.
    phi = BucketedPhi(3, torch.tensor([0, 1, 1])).double()
    phi.load_tensors({"diag": torch.tensor([1.0, 1.0, 1.0]), "B": torch.tensor([[0.0, 0.0], [0.5, 0.0]])},
                     form="prob")
    lprobs = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    out = dynamic_loss(lprobs, torch.tensor([0]), phi, form="prob")
    assert out.loss.item() == pytest.approx(-math.log(0.5 + 0.5 * (0.3 + 0.2) / 2), rel=1e-12)


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_gradcheck_logits_and_phi_tensors(parametrisation):
    generator = torch.Generator().manual_seed(3)
    phi = random_phi(parametrisation, generator)
    logits = torch.randn(4, C, generator=generator, requires_grad=True)
    target = torch.tensor([0, 3, 1, 4])
    names = list(phi.tensor_names)
    # Keep the tensors away from 0 so finite differences stay inside Phi >= 0.
    values = [(phi.tensors()[n] + 0.1).detach().requires_grad_(True) for n in names]

    def loss(z, *tensors):
        return dynamic_loss(F.log_softmax(z, -1), target, phi, nll_weight=0.3, label_smoothing=0.1,
                            phi_tensors=dict(zip(names, tensors)), form="prob").loss

    assert torch.autograd.gradcheck(loss, (logits, *values))
    assert torch.autograd.gradgradcheck(loss, (logits, *values))


def test_padding_and_batch_invariance():
    generator = torch.Generator().manual_seed(4)
    phi = random_phi("diag_lowrank", generator)
    logits = torch.randn(6, C, generator=generator)
    target = torch.randint(0, C, (6,), generator=generator)
    kwargs = dict(nll_weight=0.2, label_smoothing=0.1, form="prob")
    batch = dynamic_loss(F.log_softmax(logits, -1), target, phi, **kwargs)
    items = [dynamic_loss(F.log_softmax(logits[i:i + 1], -1), target[i:i + 1], phi, **kwargs).loss
             for i in range(6)]
    torch.testing.assert_close(batch.loss, torch.stack(items).sum())
    pad = 2
    padded_logits = torch.cat([logits, 50 * torch.randn(3, C, generator=generator)])
    padded = dynamic_loss(F.log_softmax(padded_logits, -1), torch.cat([target, torch.full((3,), pad)]),
                          phi, ignore_index=pad, reduce=False, **kwargs)
    clean = dynamic_loss(F.log_softmax(logits, -1), target, phi, ignore_index=pad, reduce=False, **kwargs)
    torch.testing.assert_close(padded.loss[:6], clean.loss)
    assert torch.all(padded.loss[6:] == 0) and torch.all(padded.dynamic[6:] == 0)


@pytest.mark.parametrize("parametrisation", PARAMS)
def test_extreme_logits_stay_finite_in_float32(parametrisation):
    torch.set_default_dtype(torch.float32)
    logits = torch.tensor([[1e4, -1e4, -1e4, -1e4, -1e4], [-1e4, 1e4, -1e4, -1e4, -1e4],
                           [0.0, 0.0, 69.0776, 0.0, 0.0]], requires_grad=True)  # last: p_y ~ 1e-30
    target = torch.tensor([0, 0, 0])
    identity = build_phi(parametrisation, C, rank=2, num_buckets=2)
    out = dynamic_loss(F.log_softmax(logits, -1), target, identity, form="prob", reduce=False)
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(out.loss, ce)  # 0, 2e4 and ~69: no underflow to inf
    (grad,) = torch.autograd.grad(out.loss.sum(), logits)
    torch.testing.assert_close(grad, torch.autograd.grad(ce.sum(), logits)[0])
    noisy = phi_equal_to(pairflip(0.4).float(), parametrisation)
    out = dynamic_loss(F.log_softmax(logits, -1), target, noisy, form="prob", measure_gradient=True)
    (grad,) = torch.autograd.grad(out.loss, logits)
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all()
    assert torch.isfinite(out.phi_grad_ratio).all() and torch.isfinite(out.phi_grad_share).all()


def test_gradient_share_and_ratio_against_per_token_autograd():
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(4, C, generator=generator)
    target = torch.tensor([1, 0, 4, 2])
    identity = FullPhi(C).double()
    out = dynamic_loss(F.log_softmax(logits, -1), target, identity, form="prob", nll_weight=0.5,
                       measure_gradient=True, reduce=False)
    torch.testing.assert_close(out.phi_grad_ratio, torch.ones(4))  # M = I: the CE gradient itself
    torch.testing.assert_close(out.phi_grad_share, torch.full((4,), 0.5))
    for form, phi in (("prob", random_phi("full", generator)), ("paper", random_phi("full", generator))):
        kwargs = dict(form=form, scale=1.0 if form == "prob" else 0.7, nll_weight=0.25, label_smoothing=0.1)
        out = dynamic_loss(F.log_softmax(logits, -1), target, phi, measure_gradient=True, reduce=False,
                           **kwargs)
        for i in range(4):
            z = logits[i:i + 1].clone().requires_grad_(True)
            one = dynamic_loss(F.log_softmax(z, -1), target[i:i + 1], phi, **kwargs)
            g_dyn = torch.autograd.grad(one.dynamic, z, retain_graph=True)[0].norm()
            g_ce = torch.autograd.grad(F.cross_entropy(z, target[i:i + 1]), z)[0].norm()
            g_mix = torch.autograd.grad(one.loss - 0.75 * one.dynamic, z)[0].norm()  # a * smoothed NLL
            assert out.phi_grad_ratio[i].item() == pytest.approx((g_dyn / g_ce).item(), rel=1e-9)
            share = 0.75 * g_dyn / (0.75 * g_dyn + g_mix)
            assert out.phi_grad_share[i].item() == pytest.approx(share.item(), rel=1e-9)
    assert dynamic_loss(F.log_softmax(logits, -1), target, identity, form="prob").phi_grad_share is None


def test_phi_from_logits_reaches_identity_and_noise_matrix():
    T = pairflip(0.4) * 0.9 + 0.1 / C  # positive entries: exactly reachable with L = log T
    torch.testing.assert_close(phi_from_logits(torch.log(T), torch.tensor(1.0)), T)
    logits = torch.randn(C, C, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(phi_from_logits(logits, torch.tensor(0.0)), torch.eye(C))
    mix = torch.tensor(0.0, requires_grad=True)
    M = phi_from_logits(logits, mix)
    (grad,) = torch.autograd.grad((M * torch.randn(C, C)).sum(), mix)
    assert grad.abs() > 0  # the identity is not a saddle
    per_row = phi_from_logits(logits, torch.rand(C))
    assert torch.all(per_row >= 0)
    torch.testing.assert_close(per_row.sum(1), torch.ones(C))
    with pytest.raises(PhiError, match=r"mix must lie in \[0, 1\]"):
        phi_from_logits(logits, torch.tensor(1.5))
    with pytest.raises(PhiError, match=r"expected \(C, C\)"):
        phi_from_logits(torch.zeros(2, 3), torch.tensor(0.5))


@pytest.mark.parametrize("parametrisation,name", [("full", "matrix"), ("diag_lowrank", "U"),
                                                  ("bucketed", "B")])
def test_negative_entries_refused_and_nothing_written(parametrisation, name):
    phi = random_phi(parametrisation, torch.Generator().manual_seed(7))
    before = {k: v.clone() for k, v in phi.tensors().items()}
    bad = {k: v.clone() for k, v in before.items()}
    bad[name][0, 1] = -0.5
    with pytest.raises(PhiError, match=f"'{name}' has 1 negative entries.*form=prob needs Phi >= 0"):
        phi.load_tensors(bad, form="prob")
    for k, v in phi.tensors().items():
        assert torch.equal(v, before[k])
    phi.load_tensors(bad)  # the paper form takes any sign
    with pytest.raises(PhiError, match="negative entries"):
        dynamic_loss(torch.log_softmax(torch.randn(2, C), -1), torch.tensor([0, 1]), phi, form="prob")
    with pytest.raises(PhiError, match="negative entries"):
        dynamic_loss(torch.log_softmax(torch.randn(2, C), -1), torch.tensor([0, 1]),
                     random_phi(parametrisation, torch.Generator()), form="prob", phi_tensors=bad)


def test_other_bad_phi_refused_with_nothing_written(tmp_path):
    phi = FullPhi(3).double()
    cases = [
        ({"matrix": torch.eye(4)}, r"shape \(4, 4\); expected \(3, 3\)"),
        ({"matrix": torch.tensor([[1.0, float("nan"), 0], [0, 1, 0], [0, 0, 1]])}, "non-finite"),
        ({"matrix": torch.eye(3, dtype=torch.complex64)}, "complex64; expected real"),
        ({"matrix": torch.eye(3).to_sparse()}, "layout torch.sparse_coo; expected a dense"),
        ({"matrix": torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]])}, "1 all-zero columns .*class 2"),
    ]
    for tensors, message in cases:
        with pytest.raises(PhiError, match=message):
            phi.load_tensors(tensors, form="prob")
        assert torch.equal(phi.matrix, torch.eye(3))
    with pytest.raises(PhiError, match="form 'sigmoid'"):
        phi.load_tensors({"matrix": torch.eye(3)}, form="sigmoid")
    lprobs, target = torch.log_softmax(torch.randn(2, 3), -1), torch.tensor([0, 1])
    with pytest.raises(PhiError, match="scale=0.5 with form='prob'"):
        dynamic_loss(lprobs, target, phi, scale=0.5, form="prob")
    with pytest.raises(PhiError, match="expected one of"):
        dynamic_loss(lprobs, target, phi, form="logit")


def test_csv_noise_matrix_file(tmp_path):
    T = pairflip(0.4, 3)
    good = tmp_path / "T.csv"
    good.write_text("\n".join(",".join(repr(float(x)) for x in row) for row in T.tolist()) + "\n")
    phi = FullPhi(3).double()
    load_phi_file(phi, str(good), form="prob")
    assert torch.equal(phi.matrix, T)
    cases = [("0.5,0.5\n0.5,0.5\n", r"shape \(2, 2\); expected \(3, 3\)"),
             ("1,0,0\n0,1\n0,0,1\n", "C rows of C comma-separated numbers"),
             ("1,0,0\n0,one,0\n0,0,1\n", "non-number"),
             ("1,0,0\n0,1,-0.1\n0,0,1\n", "negative entries")]
    for text, message in cases:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        fresh = FullPhi(3).double()
        with pytest.raises(PhiError, match=message):
            load_phi_file(fresh, str(path), form="prob")
        assert torch.equal(fresh.matrix, torch.eye(3))
    with pytest.raises(PhiError, match="bare tensor, which only initialises a 'full' Phi"):
        load_phi_file(DiagLowRankPhi(3, rank=1), str(good), form="prob")


def test_own_tensors_rechecked_after_an_in_place_change():
    phi = FullPhi(3).double()
    lprobs, target = torch.log_softmax(torch.randn(2, 3), -1), torch.tensor([0, 1])
    dynamic_loss(lprobs, target, phi, form="prob")  # checked once, then cached
    with torch.no_grad():
        phi.matrix[0, 1] = -1.0  # what a controller acting in place could do
    with pytest.raises(PhiError, match="negative entries"):
        dynamic_loss(lprobs, target, phi, form="prob")


def test_gradient_ratio_is_exact_on_a_confident_float32_token():
    torch.set_default_dtype(torch.float32)
    logits = torch.tensor([[12.0, 0.0, -3.0, 1.0, 2.0]])  # p_y ~ 1 - 1e-5
    target = torch.tensor([0])
    out = dynamic_loss(F.log_softmax(logits, -1), target, FullPhi(C), form="prob", measure_gradient=True)
    assert out.phi_grad_ratio.item() == pytest.approx(1.0, rel=1e-3)
