"""The `bonemarrow` metadata that travels inside every exported ONNX model.

The runtime reads tile, divisor and class names from the model itself, so a model
file is self-describing: nobody has to remember which settings went with it. The
provenance keys (checkpoint hash, tool versions, export date) answer "where did
this file come from" months later.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
from importlib import metadata as _importlib_metadata
from typing import Any

import onnx

from bonemarrow.runtime.contract import METADATA_KEY, PRECISIONS, SUPPORTED_FORMAT_VERSIONS, file_sha256
from bonemarrow.runtime.labels import CLASSES, COLORS

FORMAT_VERSION = max(SUPPORTED_FORMAT_VERSIONS)
__all__ = ["FORMAT_VERSION", "METADATA_KEY", "attach_metadata", "build_metadata", "file_sha256", "read_metadata"]


def _version(distribution: str) -> str | None:
    try:
        return _importlib_metadata.version(distribution)
    except _importlib_metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def tool_versions() -> dict[str, str | None]:
    """Versions of the packages that shaped the exported graph."""
    import onnxruntime
    import torch

    return {
        "bonemarrow_seg": _version("bonemarrow-seg"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxsim": _version("onnxsim"),
    }


def build_metadata(
    *,
    precision: str,
    tile: int,
    divisor: int,
    member_names: list[str],
    member_weights: list[float],
    preset: str | None,
    checkpoint_sha256: str | None,
    opset: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model contract's keys plus provenance; `extra` may add keys but not replace contract ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if tile % divisor:
        raise ValueError(f"tile {tile} is not a multiple of the model's divisor {divisor}")
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "classes": list(CLASSES),
        "colors": [list(c) for c in COLORS],
        "tile": int(tile),
        "divisor": int(divisor),
        "members": [{"name": n, "weight": float(w)} for n, w in zip(member_names, member_weights)],
        "precision": precision,
        "preset": preset,
        "source_checkpoint_sha256": checkpoint_sha256,
        "opset": int(opset),
        "versions": dict(tool_versions()),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in (extra or {}).items():
        if key in meta:
            raise ValueError(f"extra metadata key {key!r} would replace a contract key")
        meta[key] = value
    return meta


def attach_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Store `meta` as JSON under metadata_props[`bonemarrow`], replacing an older entry."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(meta, sort_keys=True)


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """Parse the `bonemarrow` entry; KeyError when the model has none."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise KeyError(f"model has no {METADATA_KEY!r} metadata")
