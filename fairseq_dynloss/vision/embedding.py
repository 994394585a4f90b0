"""Embedding network for metric learning: an ImageNet-style ResNet trunk + linear embedding,
L2-normalised. Module names follow torchvision's ResNet, so its ``resnet18``/``resnet34``
weights (a user-supplied file) load into the trunk."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .residual_block import BasicBlock

STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class EmbeddingResNet(nn.Module):
    """ResNet-18/34 trunk -> global average pool -> linear -> L2 normalisation.

    Args:
        depth: 18 or 34.
        embedding_dim: size of the embedding (128 is common for SOP).
        width: channels of the first stage (64 in torchvision; smaller for quick runs).
        pretrained_path: optional torchvision-style state dict for the trunk, loaded with
            ``weights_only=True``; ``fc.*`` entries are ignored, any other mismatch is an error.
        normalize: L2-normalise the output.
    """

    def __init__(self, depth: int = 18, embedding_dim: int = 128, width: int = 64,
                 pretrained_path: Optional[str] = None, normalize: bool = True, in_channels: int = 3):
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"embedding ResNet depth={depth}; expected one of {sorted(STAGE_BLOCKS)}")
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        for stage, blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = width * 2 ** stage
            layer = [BasicBlock(in_planes, planes, 1 if stage == 0 else 2, shortcut="projection")]
            layer += [BasicBlock(planes, planes, 1, shortcut="projection") for _ in range(blocks - 1)]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
            in_planes = planes
        self.embedding = nn.Linear(in_planes, embedding_dim)
        self.feature_dim = embedding_dim
        self.normalize = normalize
        if pretrained_path:
            self.load_trunk(pretrained_path)

    def load_trunk(self, path: str) -> None:
        """Load trunk weights from a torchvision-style checkpoint (``fc.*`` skipped)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        trunk = {k for k in self.state_dict() if not k.startswith("embedding.")}
        missing, unexpected = sorted(trunk - set(state)), sorted(set(state) - trunk)
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match the ResNet trunk: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]} (expected torchvision resnet names: conv1, bn1, layer1..layer4)"
            )
        self.load_state_dict(state, strict=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.embedding(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return F.normalize(x, dim=1) if self.normalize else x
