"""The DeepLabv3 member: torchvision's model, never with downloaded weights.

torchvision returns a dict ({"out": logits}); the wrapper returns the tensor so
every member has the same interface and the ensemble traces cleanly to ONNX.
A user who has a backbone checkpoint on disk (e.g. ImageNet ResNet-101 weights)
can load it with `load_backbone_weights`; nothing is ever fetched at run time.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models.segmentation import (
    deeplabv3_mobilenet_v3_large,
    deeplabv3_resnet50,
    deeplabv3_resnet101,
)

from bonemarrow.training.models.registry import BACKBONE_NAMES
from bonemarrow.training.state_dicts import describe_mismatch

BACKBONES = {
    "resnet101": deeplabv3_resnet101,
    "resnet50": deeplabv3_resnet50,
    "mobilenet_v3_large": deeplabv3_mobilenet_v3_large,
}
assert tuple(BACKBONES) == BACKBONE_NAMES, "registry.BACKBONE_NAMES must list the same backbones"
# Prefixes other tools put in front of backbone keys, and head keys a
# classification checkpoint carries that a segmentation backbone has not.
_STRIP_PREFIXES = ("module.", "model.", "backbone.", "features.")
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")
BN_MOMENTUM = 0.1


class BackboneWeightsError(ValueError):
    """A backbone weights file that does not fit the chosen backbone."""


class DeepLabV3Member(nn.Module):
    """DeepLabv3 returning class logits [B, num_classes, H, W] (the input's size)."""

    # The backbones are stride-32 networks (the last strides replaced by
    # dilation); multiples of 32 keep every feature map size exact.
    divisor = 32

    def __init__(self, backbone: str = "resnet101", num_classes: int = 4) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown DeepLabv3 backbone {backbone!r}; choose from {sorted(BACKBONES)}")
        self.backbone_name = backbone
        net = BACKBONES[backbone](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        # torchvision's MobileNetV3 uses batch-norm momentum 0.01, tuned for long ImageNet
        # schedules; trained from scratch for a few thousand steps its running statistics
        # lag so far behind the weights that eval-mode output is garbage. 0.1 (PyTorch's
        # default) tracks them. Momentum is not part of the state dict.
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = BN_MOMENTUM
        self.backbone = net.backbone
        self.classifier = net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.backbone(x)["out"]
        logits = self.classifier(features)
        return nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _normalise_key(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _STRIP_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def load_backbone_weights(member: DeepLabV3Member, path: str | os.PathLike) -> int:
    """Load a local backbone state dict into `member.backbone`; returns the number of tensors loaded.

    Accepts a torchvision classification checkpoint (its `fc.`/`classifier.` head
    is ignored) or a backbone state dict, with or without `backbone.`/`features.`
    prefixes. Anything else is refused with a one-line BackboneWeightsError.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BackboneWeightsError(f"{path}: no such file") from None
    except Exception as error:  # unpickling errors come in many types
        raise BackboneWeightsError(f"{path}: not a PyTorch state dict ({type(error).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneWeightsError(f"{path}: not a state dict of tensors")
    expected = member.backbone.state_dict()
    found = {
        _normalise_key(key): value
        for key, value in state.items()
        if not _normalise_key(key).startswith(_CLASSIFIER_PREFIXES)
    }
    mismatch = describe_mismatch(expected, found)
    if mismatch:
        raise BackboneWeightsError(
            f"{path}: does not fit the {member.backbone_name} backbone: {mismatch}"
        )
    member.backbone.load_state_dict(found, strict=True)
    return len(found)
