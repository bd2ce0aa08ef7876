"""JSON that every reader accepts: NaN and infinities (no tissue -> no density) become null."""
from __future__ import annotations

import json
import math
import os
from typing import Any

from bonemarrow.runtime.atomic import write_text_atomic


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float, at any depth of dicts, lists and tuples, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json_atomic(path: str | os.PathLike, value: Any, indent: int = 2) -> None:
    """Write `value` as strict JSON (non-finite floats as null), atomically."""
    write_text_atomic(path, json.dumps(json_safe(value), indent=indent, allow_nan=False) + "\n")
