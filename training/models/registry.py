"""The model registry and its limits, without torch: presets, members, backbones, defaults.

Everything a command line needs for its choices (presets, backbone names) and
everything a checkpoint's config is checked against lives here, so that
`bm-train --help` does not import torch and an untrusted config is bounded
before any model is built: a 1 KB checkpoint asking for a U-Net of width 256
(gigabytes of parameters) is refused in one line instead of built.
"""
from __future__ import annotations

import math
from typing import Any

#: The tile side a model is validated with in training and recorded for the runtime by
#: bm-export when neither the checkpoint nor the command line gives one.
DEFAULT_TILE = 512
#: Tile sides accepted in a checkpoint config or on a command line.
TILE_RANGE = (32, 8192)
#: U-Net widths accepted (init_features); 16 is `compact`, 32 the original `seed`.
UNET_FEATURES_RANGE = (1, 64)
#: The largest divisor a config may claim (the members' strides are 16 and 32).
MAX_DIVISOR = 1024

MEMBER_KINDS = ("unet", "deeplabv3")
#: DeepLabv3 backbones (torchvision constructors in bonemarrow.training.models.deeplab).
BACKBONE_NAMES = ("resnet101", "resnet50", "mobilenet_v3_large")

# ImageNet statistics on the 0..255 scale: the DeepLab backbones were designed
# around them and they suit H&E well enough for the U-Net too.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

PRESETS: dict[str, dict[str, Any]] = {
    # The original project's configuration.
    "seed": {"unet_features": 32, "deeplab_backbone": "resnet101"},
    # For CPU deployment: a narrower U-Net and the MobileNetV3 DeepLab.
    "compact": {"unet_features": 16, "deeplab_backbone": "mobilenet_v3_large"},
}
DEFAULT_PRESET = "compact"
_DEFAULTS: dict[str, Any] = {
    "members": list(MEMBER_KINDS),
    "member_weights": None,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
OVERRIDE_KEYS = frozenset({"unet_features", "deeplab_backbone", *_DEFAULTS})


class ConfigError(ValueError):
    """A model config value of the wrong type or out of bounds (one line, no path)."""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    if not is_int(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {_short(value)}")
    return value


def check_tile(value: Any, name: str = "tile") -> int | None:
    """None (not recorded) or a tile side within TILE_RANGE."""
    return None if value is None else check_int(name, value, *TILE_RANGE)


def check_members(value: Any, name: str = "members") -> list[str]:
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(m, str) for m in value)
            and len(set(value)) == len(value) and set(value) <= set(MEMBER_KINDS)):
        raise ConfigError(f"{name} must be distinct names from {list(MEMBER_KINDS)}, got {_short(value)}")
    return list(value)


def check_member_weights(value: Any, count: int, name: str = "member_weights") -> list[float] | None:
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == count and all(is_number(w) and w >= 0 for w in value)
            and sum(value) > 0):
        raise ConfigError(f"{name} must be {count} non-negative numbers with a positive sum, got {_short(value)}")
    return [float(w) for w in value]


def check_stats(name: str, value: Any, positive: bool) -> list[float]:
    """mean/std: three finite numbers on the 0..255 scale (std above zero)."""
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(
            is_number(v) and (0 < v <= 255 if positive else 0 <= v <= 255) for v in value)):
        bounds = "0 < value <= 255" if positive else "0..255"
        raise ConfigError(f"{name} must be 3 numbers ({bounds}), got {_short(value)}")
    return [float(v) for v in value]


def resolve_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The full architecture settings for a preset with overrides applied, every value checked."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {_short(preset)}; choose from {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - OVERRIDE_KEYS)
    if unknown:
        raise ConfigError(f"unknown model setting(s) {_short(unknown)}; known: {sorted(OVERRIDE_KEYS)}")
    settings = {**_DEFAULTS, **PRESETS[preset], **overrides}
    settings["members"] = check_members(settings["members"])
    settings["unet_features"] = check_int("unet_features", settings["unet_features"], *UNET_FEATURES_RANGE)
    backbone = settings["deeplab_backbone"]
    if not isinstance(backbone, str) or backbone not in BACKBONE_NAMES:
        raise ConfigError(f"unknown DeepLabv3 backbone {_short(backbone)}; choose from {sorted(BACKBONE_NAMES)}")
    settings["member_weights"] = check_member_weights(settings["member_weights"], len(settings["members"]))
    settings["mean"] = check_stats("mean", settings["mean"], positive=False)
    settings["std"] = check_stats("std", settings["std"], positive=True)
    return settings


def check_checkpoint_config(config: Any) -> dict[str, Any]:
    """Check what a checkpoint's config feeds into building and exporting a model; return the architecture.

    Types and bounds only: whether the weights fit is checked after building,
    which these bounds keep small.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a dictionary, got {type(config).__name__}")
    overrides = config.get("overrides", {})
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise ConfigError(f"overrides must be a dictionary of settings, got {_short(overrides)}")
    settings = resolve_config(config.get("preset", DEFAULT_PRESET), **overrides)
    check_tile(config.get("tile"))
    if config.get("divisor") is not None:
        check_int("divisor", config["divisor"], 1, MAX_DIVISOR)
    for key, positive in (("mean", False), ("std", True)):
        if config.get(key) is not None:
            check_stats(key, config[key], positive)
    members = config.get("members")
    if members is not None:
        if not (isinstance(members, list) and all(isinstance(m, dict) for m in members)):
            raise ConfigError(f"members must be a list of {{name, weight}}, got {_short(members)}")
        check_members([m.get("name") for m in members])
        check_member_weights([m.get("weight") for m in members], len(members), "members' weights")
    return settings


__all__ = [
    "BACKBONE_NAMES", "ConfigError", "DEFAULT_PRESET", "DEFAULT_TILE", "IMAGENET_MEAN", "IMAGENET_STD",
    "MAX_DIVISOR", "MEMBER_KINDS", "OVERRIDE_KEYS", "PRESETS", "TILE_RANGE", "UNET_FEATURES_RANGE",
    "check_checkpoint_config", "check_tile", "resolve_config",
]
