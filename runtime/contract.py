"""The model contract: what an ONNX model must look like for the runtime to accept it.

Checked once, when a model is loaded, so a wrong file fails with one clear line
naming the problem instead of a shape error deep inside a batch run:

* one input `image`: uint8 [batch, 3, height, width] (RGB, dynamic sizes);
* one output `probs`: float32 [batch, 4, height, width] (class probabilities);
* metadata_props key `bonemarrow`: JSON with format_version, classes, colors,
  tile, divisor, members and precision (extra keys are allowed).

Pure schema: names, metadata parsing and checks. Nothing here opens a session or
imports onnxruntime (bonemarrow.runtime.model does that, once, and calls these
checks on the session it opened); the exporter uses the same checks on its bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bonemarrow.runtime.labels import CLASSES, NUM_CLASSES

METADATA_KEY = "bonemarrow"
INPUT_NAME = "image"
OUTPUT_NAME = "probs"
SUPPORTED_FORMAT_VERSIONS = (1,)
PRECISIONS = ("fp32", "fp16", "int8")
REQUIRED_KEYS = ("format_version", "classes", "colors", "tile", "divisor", "members", "precision")


class ModelContractError(ValueError):
    """The file is not a model this runtime can use; the message is one line for the user."""


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, parsed from its metadata."""

    path: Path
    format_version: int
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    tile: int
    divisor: int
    members: tuple[dict, ...]
    precision: str
    metadata: dict = field(default_factory=dict, compare=False)  # the full JSON, extras included


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(path: str | os.PathLike) -> Path:
    """Refuse missing, non-regular and zero-byte files before onnxruntime sees them."""
    path = Path(path)
    if not path.exists():
        raise ModelContractError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelContractError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelContractError(f"{path}: model file is empty (0 bytes)")
    return path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_metadata(text: str | None, where: str) -> dict:
    """Validate the `bonemarrow` metadata JSON; return it as a dict."""
    if text is None:
        raise ModelContractError(f"{where}: no '{METADATA_KEY}' metadata (not exported for bonemarrow-seg?)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelContractError(f"{where}: '{METADATA_KEY}' metadata is not valid JSON ({error.msg})") from None
    if not isinstance(meta, dict):
        raise ModelContractError(f"{where}: '{METADATA_KEY}' metadata must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise ModelContractError(f"{where}: metadata lacks {', '.join(missing)}")

    def bad(key: str, expected: str) -> ModelContractError:
        return ModelContractError(f"{where}: metadata '{key}' must be {expected}, got {meta[key]!r}"[:300])

    version = meta["format_version"]
    if not _is_int(version):
        raise bad("format_version", "an integer")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelContractError(f"{where}: metadata format_version {version} is not supported "
                                 f"(this runtime reads {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); "
                                 "upgrade bonemarrow-seg")
    classes = meta["classes"]
    if not (isinstance(classes, list) and len(classes) == NUM_CLASSES and all(isinstance(c, str) for c in classes)):
        raise bad("classes", f"a list of {NUM_CLASSES} names")
    if tuple(c.lower() for c in classes) != CLASSES:
        raise bad("classes", f"{list(CLASSES)} in this order")
    colors = meta["colors"]
    if not (isinstance(colors, list) and len(colors) == NUM_CLASSES and all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c) for c in colors)):
        raise bad("colors", f"{NUM_CLASSES} [r, g, b] lists of 0..255")
    for key in ("tile", "divisor"):
        if not (_is_int(meta[key]) and meta[key] > 0):
            raise bad(key, "a positive integer")
    if meta["tile"] % meta["divisor"]:
        raise ModelContractError(f"{where}: metadata tile {meta['tile']} is not a multiple of divisor {meta['divisor']}")
    members = meta["members"]
    if not (isinstance(members, list) and members and all(
            isinstance(m, dict) and isinstance(m.get("name"), str)
            and isinstance(m.get("weight"), (int, float)) and not isinstance(m.get("weight"), bool)
            for m in members)):
        raise bad("members", "a non-empty list of {name, weight}")
    if meta["precision"] not in PRECISIONS:
        raise bad("precision", " or ".join(f'"{p}"' for p in PRECISIONS))
    return meta


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def check_io(session, where: str) -> None:
    """Input and output names, types and ranks as the contract states."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelContractError(f"{where}: model must have one input '{INPUT_NAME}', has {len(inputs)}")
    image = inputs[0]
    if image.name != INPUT_NAME:
        raise ModelContractError(f"{where}: model input is named '{image.name}', expected '{INPUT_NAME}'")
    if image.type != "tensor(uint8)":
        raise ModelContractError(f"{where}: input '{INPUT_NAME}' is {image.type}, expected tensor(uint8) "
                                 "(RGB bytes; normalisation belongs inside the model)")
    if len(image.shape) != 4:
        raise ModelContractError(f"{where}: input '{INPUT_NAME}' has shape {_shape_text(image.shape)}, "
                                 "expected rank 4 [batch, 3, height, width]")
    if _is_int(image.shape[1]) and image.shape[1] != 3:
        raise ModelContractError(f"{where}: input '{INPUT_NAME}' has {image.shape[1]} channels, expected 3 (RGB)")
    for axis, label in ((2, "height"), (3, "width")):
        if _is_int(image.shape[axis]):
            raise ModelContractError(f"{where}: input '{INPUT_NAME}' has a fixed {label} {image.shape[axis]}; "
                                     "the runtime needs dynamic height and width")
    names = [o.name for o in outputs]
    if OUTPUT_NAME not in names:
        raise ModelContractError(f"{where}: model has no output '{OUTPUT_NAME}' (outputs: {', '.join(names)})")
    probs = outputs[names.index(OUTPUT_NAME)]
    if probs.type != "tensor(float)":
        raise ModelContractError(f"{where}: output '{OUTPUT_NAME}' is {probs.type}, expected tensor(float)")
    if len(probs.shape) != 4:
        raise ModelContractError(f"{where}: output '{OUTPUT_NAME}' has shape {_shape_text(probs.shape)}, "
                                 f"expected rank 4 [batch, {NUM_CLASSES}, height, width]")
    if _is_int(probs.shape[1]) and probs.shape[1] != NUM_CLASSES:
        raise ModelContractError(f"{where}: output '{OUTPUT_NAME}' has {probs.shape[1]} classes, "
                                 f"expected {NUM_CLASSES}")


def read_model_info(session, path: str | os.PathLike) -> ModelInfo:
    """Check an opened session's model against the contract; return its ModelInfo.

    `session` is anything with onnxruntime's get_inputs/get_outputs/get_modelmeta.
    """
    path = Path(path)
    where = str(path)
    check_io(session, where)
    meta = parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), where)
    return ModelInfo(
        path=path,
        format_version=meta["format_version"],
        classes=tuple(meta["classes"]),
        colors=tuple(tuple(c) for c in meta["colors"]),
        tile=meta["tile"],
        divisor=meta["divisor"],
        members=tuple(dict(m) for m in meta["members"]),
        precision=meta["precision"],
        metadata=meta,
    )
