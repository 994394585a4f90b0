"""MNIST-1D reference networks: parameter counts of greydanus/mnist1d's models.py, shapes, forward."""

import pytest
import torch
from omegaconf import OmegaConf

from fairseq_dynloss.trainer.registry import build_net
from fairseq_dynloss.vision import Mnist1dCNN, Mnist1dGRU, Mnist1dMLP

# By hand, 10 classes, length 40:
#   MLP: 40*100+100 + 100*100+100 + 100*10+10                    = 15210
#   CNN: (1*25*5+25) + 2*(25*25*3+25) + (25*5*10+10)              = 5210 (lengths 40 -> 19 -> 10 -> 5)
#   GRU: 2 directions * 3 gates * (6*1 + 6*6 + 6 + 6) + 2*6*40*10+10 = 324 + 4810 = 5134
COUNTS = {"mnist1d_mlp": 15210, "mnist1d_cnn": 5210, "mnist1d_gru": 5134}
CONFIGS = {"mnist1d_mlp": {"hidden": 100}, "mnist1d_cnn": {"channels": 25},
           "mnist1d_gru": {"hidden": 6, "bidirectional": True}}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_and_shapes(name):
    net = build_net(OmegaConf.create({"name": name, **CONFIGS[name]}), (1, 40), 10)
    assert sum(p.numel() for p in net.parameters()) == COUNTS[name]
    assert net(torch.randn(7, 1, 40)).shape == (7, 10)
    features = build_net(OmegaConf.create({"name": name, **CONFIGS[name]}), (1, 40), 0)
    assert features(torch.randn(7, 1, 40)).shape == (7, features.feature_dim)


def test_mlp_is_the_residual_reference_forward():
    torch.manual_seed(0)
    net = Mnist1dMLP((1, 40), 10)
    x = torch.randn(5, 1, 40)
    h = torch.relu(x.flatten(1) @ net.linear1.weight.t() + net.linear1.bias)
    h = h + torch.relu(h @ net.linear2.weight.t() + net.linear2.bias)
    torch.testing.assert_close(net(x), h @ net.head.weight.t() + net.head.bias)


def test_cnn_sees_translations_locally():
    """Conv features shift with the input (stride 8 overall): a signal shifted by 8 steps gives the
    last-layer features shifted by one position, away from the padded borders."""
    torch.manual_seed(0)
    net = Mnist1dCNN((1, 40), 0)
    x = torch.zeros(1, 1, 40)
    x[0, 0, 12:16] = torch.tensor([1.0, -2.0, 3.0, 0.5])
    features = net.convs(x)
    shifted = net.convs(torch.roll(x, 8, dims=2))
    torch.testing.assert_close(shifted[..., 2:4], features[..., 1:3])


def test_gru_reads_time_steps_in_order():
    """The GRU is causal per direction: with bidirectional=False, changing the last time step
    leaves the outputs of all earlier steps unchanged."""
    torch.manual_seed(0)
    net = Mnist1dGRU((1, 40), 0, bidirectional=False)
    x = torch.randn(2, 1, 40)
    y = x.clone()
    y[..., -1] += 1.0
    a, b = net(x).view(2, 40, 6), net(y).view(2, 40, 6)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])
