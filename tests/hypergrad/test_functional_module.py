"""FunctionalModule against torch.func.functional_call: same outputs, module slots put back."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from fairseq_dynloss.hypergrad import FunctionalModule
from hypergrad_device import device  # noqa: F401 (a fixture)

D = torch.float64


class _TiedBatchNormNet(nn.Module):
    """Embedding tied to the output projection, a BatchNorm (buffers) in between."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 4)
        self.norm = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 6, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens):  # tokens: (N, L) -> (N, 6)
        return self.out(torch.tanh(self.norm(self.embed(tokens).mean(1))))


def _slots(model):
    return [
        (sub, k, v) for sub in model.modules() for slots in (sub._parameters, sub._buffers) for k, v in slots.items()
    ]


def test_call_equals_functional_call_and_puts_every_slot_back(device):
    torch.manual_seed(0)
    model = _TiedBatchNormNet().to(D).to(device).train()
    before = _slots(model)
    student = FunctionalModule(model)
    params = {k: v + 0.1 for k, v in student.params().items()}
    tokens = torch.randint(0, 6, (5, 3), generator=torch.Generator().manual_seed(1)).to(device)

    buffers = {k: b.clone() for k, b in model.named_buffers()}
    want = functional_call(model, {**params, **buffers}, (tokens,), tie_weights=True)
    got = student(params, tokens, step=0)

    assert torch.equal(got, want)
    for k, b in student.buffers_at(1).items():  # the running statistics the call advanced
        assert torch.equal(b, buffers[k])
    assert all(a is b and k == j and v is w for (a, k, v), (b, j, w) in zip(_slots(model), before))
    assert model.out.weight is model.embed.weight


def test_a_replaced_parameter_is_used_and_put_back():
    model = nn.Sequential(nn.Linear(3, 2)).to(D)
    student = FunctionalModule(model)
    replaced = model[0].weight = nn.Parameter(torch.zeros(2, 3, dtype=D))  # after the slots were looked up
    params = student.params()
    assert torch.equal(params["0.weight"], torch.zeros(2, 3, dtype=D))
    x = torch.ones(1, 3, dtype=D)
    torch.testing.assert_close(student(params, x), functional_call(model, params, (x,)), rtol=0, atol=0)
    assert model[0]._parameters["weight"] is replaced


def test_slots_are_put_back_when_the_forward_raises():
    class _Failing(nn.Linear):
        def forward(self, x):
            raise RuntimeError("boom")

    model = _Failing(2, 2)
    weight = model.weight
    student = FunctionalModule(model)
    with pytest.raises(RuntimeError, match="boom"):
        student(student.params(), torch.ones(1, 2))
    assert model._parameters["weight"] is weight
