"""Where the default model lives.

$BONEMARROW_MODEL wins; otherwise the bundled model of a source / editable
checkout, <repo>/models_onnx/bonemarrow_compact.onnx, found relative to this
runtime folder. A wheel install has no bundled model, so the error says to pass
--model.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BONEMARROW_MODEL"
DEFAULT_NAME = "bonemarrow_compact.onnx"


def bundled_model_path() -> Path:
    return Path(__file__).resolve().parent.parent / "models_onnx" / DEFAULT_NAME


def default_model_path() -> Path:
    """The model to use when none is given; FileNotFoundError with advice if there is none."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${ENV_VAR} points to {path}, which is not a file")
        return path
    path = bundled_model_path()
    if not path.is_file():
        raise FileNotFoundError(f"no model given and no bundled model at {path}: pass --model PATH "
                                f"(or set ${ENV_VAR})")
    return path
