"""PyTorch models: the U-Net and DeepLabv3 members and the ensemble that averages them.

The registry (presets, member kinds, backbone names, limits) is imported without
torch; the model classes are imported on first use, so a command line can offer
the registry's choices in --help without loading PyTorch.
"""
from __future__ import annotations

import importlib
from typing import Any

from bonemarrow.training.models.registry import (
    BACKBONE_NAMES,
    DEFAULT_TILE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MEMBER_KINDS,
    PRESETS,
    ConfigError,
    check_checkpoint_config,
    resolve_config,
)

_LAZY = {
    "BACKBONES": "deeplab",
    "BackboneWeightsError": "deeplab",
    "DeepLabV3Member": "deeplab",
    "load_backbone_weights": "deeplab",
    "Ensemble": "ensemble",
    "build_model": "presets",
    "UNet": "unet",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKBONES", "BACKBONE_NAMES", "BackboneWeightsError", "ConfigError", "DEFAULT_TILE", "DeepLabV3Member",
    "Ensemble", "IMAGENET_MEAN", "IMAGENET_STD", "MEMBER_KINDS", "PRESETS", "UNet", "build_model",
    "check_checkpoint_config", "load_backbone_weights", "resolve_config",
]
