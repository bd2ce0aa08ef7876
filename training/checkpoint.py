"""Checkpoints: a state dict plus the config needed to rebuild the exact model.

The file is a plain dict of tensors, numbers, strings, lists and dicts, so it
loads with `torch.load(weights_only=True)`: nothing in it can run code. The
model is rebuilt from (preset, overrides) with `build_model`, and its state
dict must then match the saved one key for key and shape for shape; anything
else is refused with one line that says what differs.

The config is untrusted input: every value that decides what gets built
(preset, U-Net width, backbone, members, weights, mean/std, tile, divisor) is
checked for type and bounds (bonemarrow.training.models.registry) when the file
is read, before any model exists, so a tiny file cannot make us allocate gigabytes.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.labels import CLASSES, COLORS
from bonemarrow.training.models import Ensemble, build_model
from bonemarrow.training.models.registry import ConfigError, check_checkpoint_config
from bonemarrow.training.state_dicts import describe_mismatch

FORMAT = "bonemarrow-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable bonemarrow checkpoint (message is one line naming the file)."""


def model_config(model: Ensemble, **extra: Any) -> dict[str, Any]:
    """The config a checkpoint needs to rebuild and describe `model`."""
    config = {
        "preset": getattr(model, "preset", "compact"),
        "overrides": dict(getattr(model, "overrides", {})),
        "classes": list(CLASSES),
        "colors": [list(c) for c in COLORS],
        "mean": model.pixel_mean.flatten().tolist(),
        "std": model.pixel_std.flatten().tolist(),
        "divisor": int(model.divisor),
        "members": [
            {"name": name, "weight": float(weight), "description": getattr(model, "member_descriptions", {}).get(name, name)}
            for name, weight in zip(model.member_names, model.member_weights.tolist())
        ],
    }
    config.update(extra)
    return config


def save_checkpoint(path: str | os.PathLike, model: Ensemble, config: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write model weights + config (+ extra entries such as optimizer state) atomically.

    `config` is merged over `model_config(model)`, so the architecture and the
    current member weights are always recorded whatever the caller passes.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": {**(config or {}), **model_config(model)},
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (config, model, optimizer, ...), validated to be ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is not ours
        raise CheckpointError(f"{path}: not a PyTorch checkpoint file (not a torch.save zip archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors and plain data "
            "(weights_only=True loading)"
        ) from None
    except Exception as error:  # plain text, truncated zip, ... come as many exception types
        raise CheckpointError(f"{path}: not a PyTorch checkpoint file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bonemarrow checkpoint (no '{FORMAT}' marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('format_version')!r} is not supported (need {FORMAT_VERSION})"
        )
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path}: checkpoint lacks its config or model state")
    try:
        check_checkpoint_config(payload["config"])
    except ConfigError as error:
        raise CheckpointError(f"{path}: unusable checkpoint config: {error}") from None
    return payload


def model_from_payload(payload: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> Ensemble:
    """Rebuild the ensemble a checkpoint describes and load its weights strictly."""
    config = payload["config"]
    try:
        check_checkpoint_config(config)  # again: a payload may come from elsewhere than read_checkpoint
        model = build_model(config.get("preset", "compact"), **dict(config.get("overrides", {})))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild the model from the checkpoint config: {error}") from None
    state = payload["model"]
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"{path}: weights do not match the {config.get('preset')} model: {mismatch}")
    model.load_state_dict(state, strict=True)
    return model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Ensemble, dict[str, Any]]:
    """(model in eval mode, config) from a checkpoint written by save_checkpoint."""
    payload = read_checkpoint(path, map_location)
    model = model_from_payload(payload, path)
    return model.eval(), dict(payload["config"])
