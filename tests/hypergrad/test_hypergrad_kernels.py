"""double_backward_kernels: second-order autodiff through attention works and is exact."""

import math

import torch
import torch.nn.functional as F

from fairseq_dynloss.hypergrad import double_backward_kernels
from hypergrad_device import device  # noqa: F401 (a fixture)


def _second_order(attention, q):
    out = attention(q, q, q)
    (g,) = torch.autograd.grad(out.pow(2).sum(), q, create_graph=True)
    return torch.autograd.grad(g.pow(2).sum(), q)[0]


def _manual_attention(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v


def test_sdpa_double_backward_under_math_kernel_equals_manual_attention(device):
    q = torch.randn(2, 2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = q.to(device).requires_grad_(True)
    with double_backward_kernels():
        got = _second_order(F.scaled_dot_product_attention, q)
    torch.testing.assert_close(got, _second_order(_manual_attention, q), rtol=1e-10, atol=1e-12)


def test_cudnn_flag_is_restored():
    before = torch.backends.cudnn.enabled
    with double_backward_kernels(disable_cudnn=True):
        assert not torch.backends.cudnn.enabled
    assert torch.backends.cudnn.enabled == before
