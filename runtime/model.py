"""A model opened once: one session, checked against the contract, hashed once.

    model = open_model("model.onnx", provider="auto")   # CUDA only if it really runs
    model.info.tile, model.sha256, model.choice.describe()
    probs = model.predict(batch)                         # uint8 [B,3,h,w] -> float32 [B,4,h,w]
    outputs = model.run(batch)                           # every output the model declares, by name

Everything that runs or describes a model (Segmenter, bm-run's results, the app,
the benchmarks) takes a LoadedModel, so nothing opens the file a second time to
read its metadata or hash. The model is separate from how it is tiled
(bonemarrow.runtime.tiling.TilingConfig): one loaded model serves any number of
tiling settings, from any number of threads.

On CUDA the session runs through IO binding (bonemarrow.runtime.binding): fixed
input and output buffers per batch shape, reused call after call, one set per
thread (and a CUDA graph per shape when CudaSettings.cuda_graph is on). On the
CPU plain `session.run` is the default; IO binding gives the same outputs there.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonemarrow.runtime.contract import INPUT_NAME, OUTPUT_NAME, ModelInfo, file_sha256, read_model_info
from bonemarrow.runtime.providers import CUDA, CudaSettings, SessionChoice, open_session

ENV_VAR = "BONEMARROW_MODEL"
DEFAULT_NAME = "bonemarrow_compact.onnx"
_GRAPH_SETUP = threading.Lock()  # makes a model's one CUDA-graph runner exactly once


@dataclass(frozen=True)
class LoadedModel:
    """An onnxruntime session with the contract's view of its model and the file's sha256."""

    session: object  # onnxruntime.InferenceSession
    info: ModelInfo
    sha256: str
    choice: SessionChoice  # the provider it really runs on, and why
    io_binding: bool = False  # run through fixed, reused buffers (bonemarrow.runtime.binding)
    _timer: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    _runners: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    _graph: list = field(default_factory=list, repr=False, compare=False)  # [lock, runner] with a CUDA graph

    @property
    def provider(self) -> str:
        """The execution provider the session really runs on."""
        return self.choice.provider

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every output the model declares, in the graph's order (`probs` first for bm-export's models)."""
        return tuple(o.name for o in self.session.get_outputs())

    def _runner(self):
        from bonemarrow.runtime.binding import BoundRunner

        runner = getattr(self._runners, "runner", None)
        if runner is None:
            cuda = self.choice.cuda if self.provider == CUDA else None
            runner = BoundRunner(self.session, INPUT_NAME, device="cuda" if cuda else "cpu",
                                 device_id=cuda.device_id if cuda else 0)
            self._runners.runner = runner
        return runner

    def _outputs(self, batch: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Outputs by name, possibly views of reused buffers (until this thread's next call)."""
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        start = time.perf_counter()
        try:
            if self.choice.cuda_graph:  # one session-wide set of graphs: one caller at a time
                with _GRAPH_SETUP:
                    if not self._graph:
                        from bonemarrow.runtime.binding import BoundRunner

                        self._graph.extend([threading.Lock(), BoundRunner(
                            self.session, INPUT_NAME, device="cuda", device_id=self.choice.cuda.device_id,
                            cuda_graph=True)])
                lock, runner = self._graph
                with lock:
                    return runner.run(batch, names)  # device buffers are copied out: owned arrays
            if self.io_binding:
                return self._runner().run(batch, names)
            return dict(zip(names, self.session.run(list(names), {INPUT_NAME: batch})))
        finally:
            self._timer.seconds = self.model_seconds + time.perf_counter() - start

    def run(self, batch: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """{output name: array} for every declared output (or `names`); the arrays are the caller's."""
        names = self.output_names if names is None else tuple(names)
        outputs = self._outputs(batch, names)
        if self.io_binding and not self.choice.cuda_graph:
            outputs = {name: array.copy() for name, array in outputs.items()}
        return outputs

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [B, 3, h, w] -> float32 [B, 4, h, w]; h, w multiples of info.divisor. The array is the caller's."""
        return np.asarray(self.run(batch, (OUTPUT_NAME,))[OUTPUT_NAME], dtype=np.float32)

    def predict_view(self, batch: np.ndarray) -> np.ndarray:
        """predict without the final copy: with IO binding the array is this thread's output buffer,
        overwritten by its next call (the tiler reads each output before calling again)."""
        return np.asarray(self._outputs(batch, (OUTPUT_NAME,))[OUTPUT_NAME], dtype=np.float32)

    @property
    def model_seconds(self) -> float:
        """Seconds this thread has spent inside predict (per thread: visitors of a shared model don't mix)."""
        return getattr(self._timer, "seconds", 0.0)


def open_model(path: str | os.PathLike, provider: str = "auto", threads: int | None = None, *,
               cuda: CudaSettings | None = None, io_binding: bool | None = None) -> LoadedModel:
    """Open `path` once on `provider` ("auto", "cpu" or "cuda"), check it, hash it.

    cuda: how the CUDA provider runs (CudaSettings; unused on the CPU).
    io_binding: run through fixed, reused buffers; None = on CUDA only.
    ModelContractError: not a model this runtime can use (one line naming the file);
    ProviderError: the provider cannot run it; InstallError: onnxruntime missing or doubled.
    """
    path = Path(path)
    session, choice = open_session(path, provider, threads, cuda)
    info = read_model_info(session, path)
    binding = choice.provider == CUDA if io_binding is None else bool(io_binding)
    return LoadedModel(session=session, info=info, sha256=file_sha256(path), choice=choice, io_binding=binding)


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
