"""The RepDistiller CIFAR model zoo, key for key, under RepDistiller's own model names.

Every model's state_dict matches RepDistiller's (HobbitLong/RepDistiller, ``models/``), so a
RepDistiller checkpoint loads strictly::

    model = create_model("resnet32x4")
    model.load_state_dict(torch.load(path, weights_only=True)["model"])   # or fkdlib.models.checkpoints.safe_load(path)

``model(x)`` returns logits; ``model(x, is_feat=True)`` returns ``(feats, logits)`` with RepDistiller's
feature list, whose ``feats[-2]`` is the last 4-D feature map it exposes and ``feats[-1]`` the
(B, D) embedding fed to the linear classifier. Inputs of 32x32, 64x64 and 96x96 all work.
"""
import torch.nn as nn

from .mobilenetv2 import mobile_half
from .resnet_cifar import resnet8, resnet8x4, resnet14, resnet20, resnet32, resnet32x4, resnet44, resnet56, resnet110
from .resnetv2 import ResNet18, ResNet34, ResNet50, ResNet101, ResNet152
from .shufflenetv1 import ShuffleV1
from .shufflenetv2 import ShuffleV2
from .vgg import vgg8, vgg11, vgg13, vgg16, vgg19
from .wrn import wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2

__all__ = ["create_model", "list_models", "feature_dim", "classifier_of"]

_MODELS = {
    "resnet8": resnet8,
    "resnet14": resnet14,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet8x4": resnet8x4,
    "resnet32x4": resnet32x4,
    "ResNet18": ResNet18,
    "ResNet34": ResNet34,
    "ResNet50": ResNet50,
    "ResNet101": ResNet101,
    "ResNet152": ResNet152,
    "wrn_16_1": wrn_16_1,
    "wrn_16_2": wrn_16_2,
    "wrn_40_1": wrn_40_1,
    "wrn_40_2": wrn_40_2,
    "vgg8": vgg8,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "MobileNetV2": mobile_half,
    "mobile_half": mobile_half,
    "ShuffleV1": ShuffleV1,
    "ShuffleV2": ShuffleV2,
}


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 100) -> nn.Module:
    """Build the RepDistiller model ``name`` with a ``num_classes``-way classifier."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes)


def classifier_of(model: nn.Module) -> nn.Linear:
    """The final linear layer that maps ``feats[-1]`` to the logits."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return linears[-1]


def feature_dim(model: nn.Module) -> int:
    """D, the width of the embedding ``feats[-1]`` (the classifier's ``in_features``)."""
    return classifier_of(model).in_features
