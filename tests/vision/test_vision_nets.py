"""Each network's output shape and parameter count against the published architecture."""

import pytest
import torch

from fairseq_dynloss.vision import CifarResNet, DenseNetBC, EmbeddingResNet, LeNet, MLP, WideResNet

count = lambda model: sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth,params", [(8, 75_290), (20, 269_722), (32, 464_154)])
def test_cifar_resnets_match_he_et_al(depth, params):
    # He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-32 0.46M (option A: no shortcut weights).
    model = CifarResNet(depth, 10)
    assert count(model) == params
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert CifarResNet(depth, 100)(torch.randn(1, 3, 32, 32)).shape == (1, 100)


def test_wide_resnet_28_10_has_36_5m_parameters():
    model = WideResNet(28, 10, 10)
    assert count(model) == 36_479_194  # Zagoruyko & Komodakis 2016: 36.5M
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_densenet_bc_100_12_has_0_8m_parameters():
    model = DenseNetBC(100, 12, 10)
    assert count(model) == 769_162  # Huang et al. 2017, Table 2: 0.8M
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_lenet5_and_mlp():
    lenet = LeNet((1, 28, 28), 10)
    assert count(lenet) == 61_706  # LeNet-5's 61,706 weights (conv1 padded: 28x28 = 32x32)
    assert lenet(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert LeNet((1, 8, 8), 10)(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    mlp = MLP((1, 28, 28), 10)
    assert count(mlp) == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    assert mlp(torch.randn(4, 1, 28, 28)).shape == (4, 10)


@pytest.mark.parametrize("make", [
    lambda n: MLP((1, 8, 8), n), lambda n: LeNet((1, 8, 8), n), lambda n: CifarResNet(8, n),
    lambda n: WideResNet(10, 1, n), lambda n: DenseNetBC(10, 4, n),
])
def test_no_head_returns_features_of_feature_dim(make):
    model = make(0)
    shape = (2, 1, 8, 8) if isinstance(model, (MLP, LeNet)) else (2, 3, 32, 32)
    assert model(torch.randn(*shape)).shape == (2, model.feature_dim)


def test_embedding_resnet_is_normalised_and_its_trunk_is_resnet18():
    model = EmbeddingResNet(18, 128)
    trunk = count(model) - count(model.embedding)
    assert trunk == 11_689_512 - (512 * 1000 + 1000)  # torchvision resnet18 minus its fc
    small = EmbeddingResNet(18, 16, width=8).eval()
    out = small(torch.randn(3, 3, 64, 64))
    assert out.shape == (3, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_embedding_resnet_loads_pretrained_trunk_weights(tmp_path):
    source = EmbeddingResNet(18, 16, width=8)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("embedding.")}
    state["fc.weight"] = torch.zeros(1000, 64)  # a classifier head, as in torchvision files
    torch.save({"state_dict": state}, tmp_path / "trunk.pt")
    loaded = EmbeddingResNet(18, 16, width=8, pretrained_path=str(tmp_path / "trunk.pt"))
    assert torch.equal(loaded.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="missing.*layer1.0.conv1.weight"):
        EmbeddingResNet(18, 16, width=8, pretrained_path=str(tmp_path / "bad.pt"))


def test_bad_depths_are_refused():
    for make in (lambda: CifarResNet(21, 10), lambda: WideResNet(27, 10, 10),
                 lambda: DenseNetBC(99, 12, 10), lambda: EmbeddingResNet(50)):
        with pytest.raises(ValueError, match="depth"):
            make()
