"""Named model configurations and `build_model`, the one way to construct an ensemble.

A checkpoint stores (preset, overrides); `build_model` rebuilds exactly the same
architecture from them, so a state dict is never loaded into a guessed model.
"""
from __future__ import annotations

from typing import Any

from bonemarrow.runtime.labels import NUM_CLASSES
from bonemarrow.training.models.deeplab import BACKBONES, DeepLabV3Member
from bonemarrow.training.models.ensemble import IMAGENET_MEAN, IMAGENET_STD, Ensemble
from bonemarrow.training.models.unet import UNet

MEMBER_KINDS = ("unet", "deeplabv3")

PRESETS: dict[str, dict[str, Any]] = {
    # The original project's configuration.
    "seed": {"unet_features": 32, "deeplab_backbone": "resnet101"},
    # For CPU deployment: a narrower U-Net and the MobileNetV3 DeepLab.
    "compact": {"unet_features": 16, "deeplab_backbone": "mobilenet_v3_large"},
}
_DEFAULTS: dict[str, Any] = {
    "members": list(MEMBER_KINDS),
    "member_weights": None,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
OVERRIDE_KEYS = frozenset({"unet_features", "deeplab_backbone", *_DEFAULTS})


def resolve_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The full architecture settings for a preset with overrides applied (validated)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"unknown model setting(s) {unknown}; known: {sorted(OVERRIDE_KEYS)}")
    settings = {**_DEFAULTS, **PRESETS[preset], **overrides}
    members = list(settings["members"])
    if not members or len(set(members)) != len(members) or not set(members) <= set(MEMBER_KINDS):
        raise ValueError(f"members must be distinct names from {list(MEMBER_KINDS)}, got {members}")
    settings["members"] = members
    if settings["deeplab_backbone"] not in BACKBONES:
        raise ValueError(f"unknown DeepLabv3 backbone {settings['deeplab_backbone']!r}; choose from {sorted(BACKBONES)}")
    return settings


def build_model(preset: str = "compact", **overrides: Any) -> Ensemble:
    """Build an untrained ensemble (no weights are downloaded, ever).

    Overrides: unet_features (int), deeplab_backbone ("resnet101", "resnet50",
    "mobilenet_v3_large"), members (subset of ["unet", "deeplabv3"]),
    member_weights (one per member), mean/std (3 floats on the 0..255 scale).
    """
    settings = resolve_config(preset, **overrides)
    members = {}
    for name in settings["members"]:
        if name == "unet":
            members[name] = UNet(3, NUM_CLASSES, init_features=int(settings["unet_features"]))
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
