"""A model opened once: one session, checked against the contract, hashed once.

    model = open_model("model.onnx", provider="auto")   # CUDA only if it really runs
    model.info.tile, model.sha256, model.choice.describe()
    probs = model.predict(batch)                         # uint8 [B,3,h,w] -> float32 [B,4,h,w]

Everything that runs or describes a model (Segmenter, bm-run's results, the app,
the benchmarks) takes a LoadedModel, so nothing opens the file a second time to
read its metadata or hash. The model is separate from how it is tiled
(bonemarrow.runtime.tiling.TilingConfig): one loaded model serves any number of
tiling settings, from any number of threads.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonemarrow.runtime.contract import INPUT_NAME, OUTPUT_NAME, ModelInfo, file_sha256, read_model_info
from bonemarrow.runtime.providers import SessionChoice, open_session

ENV_VAR = "BONEMARROW_MODEL"
DEFAULT_NAME = "bonemarrow_compact.onnx"


@dataclass(frozen=True)
class LoadedModel:
    """An onnxruntime session with the contract's view of its model and the file's sha256."""

    session: object  # onnxruntime.InferenceSession
    info: ModelInfo
    sha256: str
    choice: SessionChoice  # the provider it really runs on, and why
    _timer: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @property
    def provider(self) -> str:
        """The execution provider the session really runs on."""
        return self.choice.provider

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [B, 3, h, w] -> float32 [B, 4, h, w]; h, w multiples of info.divisor."""
        start = time.perf_counter()
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.uint8)})[0]
        self._timer.seconds = self.model_seconds + time.perf_counter() - start
        return np.asarray(out, dtype=np.float32)

    @property
    def model_seconds(self) -> float:
        """Seconds this thread has spent inside predict (per thread: visitors of a shared model don't mix)."""
        return getattr(self._timer, "seconds", 0.0)


def open_model(path: str | os.PathLike, provider: str = "auto", threads: int | None = None) -> LoadedModel:
    """Open `path` once on `provider` ("auto", "cpu" or "cuda"), check it, hash it.

    ModelContractError: not a model this runtime can use (one line naming the file);
    ProviderError: the provider cannot run it; InstallError: onnxruntime missing or doubled.
    """
    path = Path(path)
    session, choice = open_session(path, provider, threads)
    info = read_model_info(session, path)
    return LoadedModel(session=session, info=info, sha256=file_sha256(path), choice=choice)


def bundled_model_path() -> Path:
    """<repo>/models_onnx/bonemarrow_compact.onnx of a source or editable checkout."""
    return Path(__file__).resolve().parent.parent / "models_onnx" / DEFAULT_NAME


def default_model_path() -> Path:
    """$BONEMARROW_MODEL, else the bundled model; FileNotFoundError with advice if there is none.

    A wheel install has no bundled model, so the error says to pass --model.
    """
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


__all__ = ["ENV_VAR", "LoadedModel", "bundled_model_path", "default_model_path", "open_model"]
