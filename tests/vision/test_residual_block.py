"""vision/residual_block.BasicBlock: the one residual block of the CIFAR ResNets (zero-padding
shortcut) and the embedding ResNet (torchvision projection), against hand-built references."""

import pytest
import torch
import torch.nn.functional as F

from fairseq_dynloss.vision.residual_block import BasicBlock


def residual(block, x):
    return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))


def test_pad_shortcut_subsamples_and_zero_pads_channels_without_parameters():
    torch.manual_seed(0)
    block = BasicBlock(2, 5, 2).eval()  # 3 extra channels: 1 before, 2 after
    x = torch.randn(3, 2, 6, 6)
    sub = x[:, :, ::2, ::2]
    zeros = lambda n: torch.zeros(3, n, 3, 3)
    expected = F.relu(residual(block, x) + torch.cat([zeros(1), sub, zeros(2)], dim=1))
    assert torch.equal(block(x), expected)
    assert block.downsample is None and not any("downsample" in k for k in block.state_dict())


def test_projection_shortcut_is_a_1x1_conv_bn_only_where_the_shape_changes():
    torch.manual_seed(0)
    block = BasicBlock(2, 4, 2, shortcut="projection").eval()
    x = torch.randn(3, 2, 6, 6)
    assert torch.equal(block(x), F.relu(residual(block, x) + block.downsample(x)))
    assert block.downsample[0].kernel_size == (1, 1) and block.downsample[0].stride == (2, 2)
    same = BasicBlock(4, 4, 1, shortcut="projection").eval()
    y = torch.randn(3, 4, 6, 6)
    assert same.downsample is None and torch.equal(same(y), F.relu(residual(same, y) + y))


def test_an_unknown_shortcut_is_refused_by_name():
    with pytest.raises(ValueError, match=r"shortcut='B'; expected one of \['pad', 'projection'\]"):
        BasicBlock(2, 4, 2, shortcut="B")
