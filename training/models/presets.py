"""`build_model`, the one way to construct an ensemble, from a preset and overrides.

A checkpoint stores (preset, overrides); `build_model` rebuilds exactly the same
architecture from them, so a state dict is never loaded into a guessed model.
The presets, limits and checks live in the torch-free registry; every value is
checked there before a single layer is built.
"""
from __future__ import annotations

from typing import Any

from bonemarrow.runtime.labels import NUM_CLASSES
from bonemarrow.training.models.deeplab import DeepLabV3Member
from bonemarrow.training.models.ensemble import Ensemble
from bonemarrow.training.models.registry import MEMBER_KINDS, OVERRIDE_KEYS, PRESETS, resolve_config
from bonemarrow.training.models.unet import UNet


def build_model(preset: str = "compact", **overrides: Any) -> Ensemble:
    """Build an untrained ensemble (no weights are downloaded, ever).

    Overrides: unet_features (int, see registry.UNET_FEATURES_RANGE), deeplab_backbone
    (registry.BACKBONE_NAMES), members (subset of ["unet", "deeplabv3"]),
    member_weights (one per member), mean/std (3 floats on the 0..255 scale).
    Out-of-range values raise registry.ConfigError (a ValueError) before anything is built.
    """
    settings = resolve_config(preset, **overrides)
    members = {}
    for name in settings["members"]:
        if name == "unet":
            members[name] = UNet(3, NUM_CLASSES, init_features=settings["unet_features"])
        else:
            members[name] = DeepLabV3Member(settings["deeplab_backbone"], NUM_CLASSES)
    model = Ensemble(members, settings["member_weights"], settings["mean"], settings["std"])
    model.preset = preset
    model.overrides = dict(overrides)
    model.member_descriptions = {
        name: (f"UNet(init_features={settings['unet_features']})" if name == "unet"
               else f"DeepLabv3-{settings['deeplab_backbone']}")
        for name in settings["members"]
    }
    return model


__all__ = ["MEMBER_KINDS", "OVERRIDE_KEYS", "PRESETS", "build_model", "resolve_config"]
