"""Plain-torch vision networks for the generic trainer (no torchvision).

Kept out of a ``models/`` folder: fairseq auto-imports ``models/`` of a ``--user-dir``.
Every network has ``feature_dim`` and takes ``num_outputs`` (0: return features, no head).
"""

from .densenet import DenseNetBC
from .embedding import EmbeddingResNet
from .lenet import LeNet
from .mlp import MLP
from .mnist1d import Mnist1dCNN, Mnist1dGRU, Mnist1dMLP
from .resnet_cifar import CifarResNet
from .wide_resnet import WideResNet

__all__ = ["DenseNetBC", "EmbeddingResNet", "LeNet", "MLP", "Mnist1dCNN", "Mnist1dGRU", "Mnist1dMLP",
           "CifarResNet", "WideResNet"]
