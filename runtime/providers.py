"""onnxruntime: its import, the execution provider chosen honestly and quietly, and the one-line reasons.

* `auto` uses CUDA only when it really works: the session is created and CUDA is
  the provider it actually runs on; otherwise the CPU, with one line saying why.
* `cuda` never runs silently on the CPU: it fails with one line.
* `cpu` is the CPU.

onnxruntime prints provider-load failures (missing CUDA libraries and so on) as
log noise on stdout/stderr; those are silenced, and the caller reports ONE line
(`describe(...)`). onnxruntime and onnxruntime-gpu install the same Python module
and overwrite each other's files, so having both is refused up front.

One session is opened: on CUDA when CUDA is tried and runs the model, else on the
CPU. Only when a CUDA attempt fails is a CPU session opened as well, which also
tells a broken model (it fails there too) from a CUDA problem.

How the CUDA provider runs is a frozen CudaSettings (cuDNN's algorithm search and
workspace, the memory arena, an optional CUDA graph), turned into onnxruntime's
provider options in one place (`CudaSettings.provider_options`).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from bonemarrow.runtime.contract import ModelContractError, check_model_file

PROVIDERS = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
CUDNN_SEARCHES = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")
ARENA_STRATEGIES = ("kSameAsRequested", "kNextPowerOfTwo")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CudaSettings:
    """How onnxruntime's CUDA provider runs the model (each field is one provider option).

    cudnn_conv_algo_search: "HEURISTIC" asks cuDNN for a good algorithm at once;
      "EXHAUSTIVE" benchmarks every algorithm the first time a shape is seen (a stall of
      up to seconds per new shape, paid once: worth it only with fixed shapes, i.e. with
      TilingConfig.fixed_batch and images no shorter than a tile); "DEFAULT" takes
      cuDNN's first algorithm.
    cudnn_conv_use_max_workspace: let cuDNN use as much workspace as its fastest
      algorithms want (onnxruntime's default too since 1.14; stated so it stays so).
    arena_extend_strategy: "kSameAsRequested" grows the memory arena by what is asked
      (fixed shapes: one size, no waste); "kNextPowerOfTwo" rounds up.
    gpu_mem_limit: bytes the arena may hold (None: onnxruntime's default, no limit).
    cuda_graph: capture each fixed input shape's run as a CUDA graph and replay it
      (needs IO binding with fixed device buffers, which LoadedModel uses then, and every
      node on CUDA; onnxruntime refuses a model with CPU nodes, and then the session is
      opened without it and the choice's note says so).
    copy_in_default_stream: host<->device copies on the compute stream (onnxruntime's
      default; ordering stays simple).
    """

    device_id: int = 0
    cudnn_conv_algo_search: str = "HEURISTIC"
    cudnn_conv_use_max_workspace: bool = True
    arena_extend_strategy: str = "kSameAsRequested"
    gpu_mem_limit: int | None = None
    cuda_graph: bool = False
    copy_in_default_stream: bool = True

    def __post_init__(self) -> None:
        if not (_is_int(self.device_id) and self.device_id >= 0):
            raise ValueError(f"device_id must be a non-negative integer, got {self.device_id!r}")
        if self.cudnn_conv_algo_search not in CUDNN_SEARCHES:
            raise ValueError(f"cudnn_conv_algo_search must be one of {', '.join(CUDNN_SEARCHES)}, "
                             f"got {self.cudnn_conv_algo_search!r}")
        if self.arena_extend_strategy not in ARENA_STRATEGIES:
            raise ValueError(f"arena_extend_strategy must be one of {', '.join(ARENA_STRATEGIES)}, "
                             f"got {self.arena_extend_strategy!r}")
        if self.gpu_mem_limit is not None and not (_is_int(self.gpu_mem_limit) and self.gpu_mem_limit > 0):
            raise ValueError(f"gpu_mem_limit must be a positive number of bytes or None, got {self.gpu_mem_limit!r}")
        for name in ("cudnn_conv_use_max_workspace", "cuda_graph", "copy_in_default_stream"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def provider_options(self) -> dict[str, str]:
        """onnxruntime's CUDAExecutionProvider options (strings, as onnxruntime reports them back)."""
        options = {
            "device_id": str(self.device_id),
            "cudnn_conv_algo_search": self.cudnn_conv_algo_search,
            "cudnn_conv_use_max_workspace": "1" if self.cudnn_conv_use_max_workspace else "0",
            "arena_extend_strategy": self.arena_extend_strategy,
            "do_copy_in_default_stream": "1" if self.copy_in_default_stream else "0",
            "enable_cuda_graph": "1" if self.cuda_graph else "0",
        }
        if self.gpu_mem_limit is not None:
            options["gpu_mem_limit"] = str(self.gpu_mem_limit)
        return options


#: The default CUDA provider options (what bm-run uses).
CUDA_OPTIONS = CudaSettings().provider_options()
# onnxruntime logger severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
_QUIET = 3
_SILENT = 4


class ProviderError(RuntimeError):
    """The requested execution provider cannot be used; the message is one line."""


class InstallError(RuntimeError):
    """onnxruntime is missing, or installed twice (CPU and GPU wheels)."""


@dataclass(frozen=True)
class SessionChoice:
    provider: str  # the provider the session really runs on
    requested: str
    threads: int | None
    note: str = ""  # why auto fell back to the CPU (or, on CUDA, why a CUDA graph is off), if it did
    cuda: CudaSettings | None = field(default=None, compare=False)  # the settings a CUDA session really has

    @property
    def cuda_graph(self) -> bool:
        """True when the session really captures CUDA graphs."""
        return self.provider == CUDA and self.cuda is not None and self.cuda.cuda_graph

    def describe(self) -> str:
        """The one line users see."""
        if self.provider == CUDA:
            graph = ", CUDA graphs" if self.cuda_graph else ""
            reason = f"; {self.note}" if self.note else ""
            return f"provider: CUDA ({CUDA}{graph}){reason}"
        threads = f", {self.threads} threads" if self.threads else ""
        reason = f"; {self.note}" if self.note else ""
        return f"provider: CPU ({CPU}{threads}){reason}"


def installed_runtimes() -> list[str]:
    """Distributions that provide the `onnxruntime` module Python imports.

    Two wheels clash only where they share a directory (one overwrote the other's
    files). A wheel in a directory further down sys.path is shadowed and harmless: a
    GPU wheel installed with `pip install --target DIR` on PYTHONPATH over a machine's
    CPU wheel is what Python imports, whole.
    """
    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            found.append((name, importlib.metadata.distribution(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    if len(found) < 2:
        return [name for name, _ in found]
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return [name for name, _ in found]
    imported_from = Path(spec.origin).resolve().parent.parent
    return [name for name, dist in found if Path(dist.locate_file("")).resolve() == imported_from]


def import_onnxruntime():
    """Import onnxruntime, refusing a broken install with instructions."""
    runtimes = installed_runtimes()
    if len(runtimes) > 1:
        raise InstallError("both onnxruntime and onnxruntime-gpu are installed and overwrite each other; "
                           "fix with: pip uninstall -y onnxruntime onnxruntime-gpu && "
                           "pip install 'bonemarrow-seg[gpu]' (or [cpu])")
    try:
        import onnxruntime
    except ImportError:
        raise InstallError("onnxruntime is not installed: pip install 'bonemarrow-seg[cpu]' "
                           "(or 'bonemarrow-seg[gpu]' on a CUDA machine)") from None
    return onnxruntime


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (ORT's own default ignores affinity masks)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def silenced_output() -> Iterator[list[str]]:
    """Send fd 1 and 2 to a temporary file for the block (C++ log lines bypass sys.stdout).

    Yields a list that, after the block, holds what was captured, so a caller can
    quote the first line of a provider failure instead of printing all of it.
    """
    captured: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.extend(sink.read().decode("utf-8", "replace").splitlines())


def _options(ort, threads: int | None, severity: int):
    options = ort.SessionOptions()
    options.log_severity_level = severity
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    return options


def _first_error_line(error: BaseException, captured: list[str] | None = None) -> str:
    for text in [str(error), *(captured or [])]:
        for line in text.splitlines():
            line = line.strip()
            if line:
                return line[:240]
    return type(error).__name__


def _open(ort, path: Path, providers: list, threads: int | None, severity: int):
    """Create a session; turn any onnxruntime load failure into a ModelContractError."""
    try:
        return ort.InferenceSession(str(path), _options(ort, threads, severity), providers=providers)
    except Exception as error:  # ORT raises several pybind types (InvalidProtobuf, Fail, ...)
        raise ModelContractError(f"{path}: cannot load the model ({_first_error_line(error)})") from None


_PRELOADED: list[bool] = []


def preload_cuda_libraries(ort) -> None:
    """Load the CUDA and cuDNN libraries of the nvidia-* pip packages, once, quietly.

    onnxruntime-gpu finds them through `onnxruntime.preload_dlls()` (1.21 on), where
    no system CUDA is on the loader's path (a pip-installed CUDA beside PyTorch). Harmless
    where they are already loaded or absent: a failure here is left to the session's own.
    """
    if _PRELOADED or not hasattr(ort, "preload_dlls"):
        return
    _PRELOADED.append(True)
    try:
        with silenced_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ort.preload_dlls()
    except Exception:  # noqa: BLE001 - the session creation reports what is really missing
        pass


def _cuda_session(ort, path: Path, threads: int | None, cuda: CudaSettings):
    """(session or None, first captured/raised line) for one CUDA attempt with `cuda`'s options."""
    ort.set_default_logger_severity(_SILENT)
    captured: list[str] = []
    try:
        with silenced_output() as captured, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ORT warns in Python too when a provider is missing
            session = ort.InferenceSession(str(path), _options(ort, threads, _SILENT),
                                           providers=[(CUDA, cuda.provider_options()), CPU])
    except Exception as error:
        return None, _first_error_line(error, captured)
    finally:
        ort.set_default_logger_severity(_QUIET)
    if session.get_providers()[0] != CUDA:
        detail = next((line.strip() for line in captured if line.strip()), "no CUDA device or libraries")
        return None, detail[:200]
    return session, ""


def _try_cuda(ort, path: Path, threads: int | None, cuda: CudaSettings) -> tuple[object | None, str, CudaSettings]:
    """(CUDA session, note, settings it has) if CUDA really runs the model, else (None, reason, settings).

    A CUDA graph that onnxruntime refuses (nodes outside the CUDA provider, say) costs
    the graph, not CUDA: the session is opened again without it and the note says why.
    """
    preload_cuda_libraries(ort)
    session, detail = _cuda_session(ort, path, threads, cuda)
    if session is not None or not cuda.cuda_graph:
        return session, ("" if session is not None else f"CUDA could not start ({detail})"), cuda
    plain = replace(cuda, cuda_graph=False)
    session, plain_detail = _cuda_session(ort, path, threads, plain)
    if session is None:
        return None, f"CUDA could not start ({plain_detail})", plain
    return session, f"CUDA graphs off ({detail[:160]})", plain


def open_session(path: str | os.PathLike, provider: str = "auto", threads: int | None = None,
                 cuda: CudaSettings | None = None):
    """Return (onnxruntime.InferenceSession, SessionChoice) for the model at `path`.

    cuda: how the CUDA provider runs (default CudaSettings()); unused on the CPU.
    ModelContractError when the file is missing or onnxruntime cannot load it;
    ProviderError when `provider` is unknown or `cuda` cannot run.
    """
    if provider not in PROVIDERS:
        raise ProviderError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    cuda = CudaSettings() if cuda is None else cuda
    ort = import_onnxruntime()
    ort.set_default_logger_severity(_QUIET)
    path = check_model_file(path)
    cpu_threads = threads or default_threads()
    if provider == "cpu":
        return _open(ort, path, [CPU], cpu_threads, _QUIET), SessionChoice(CPU, provider, cpu_threads)
    if CUDA not in ort.get_available_providers():
        note = "this onnxruntime build has no CUDA provider (install bonemarrow-seg[gpu])"
        if provider == "cuda":
            raise ProviderError(f"--provider cuda: {note}; use --provider cpu or auto to run on the CPU")
        return _open(ort, path, [CPU], cpu_threads, _QUIET), SessionChoice(CPU, provider, cpu_threads, note)
    session, note, used = _try_cuda(ort, path, threads, cuda)
    if session is not None:
        return session, SessionChoice(CUDA, provider, threads, note, cuda=used)
    # CUDA did not run the model. A CPU session says whether the model itself is broken
    # (ModelContractError) or CUDA is the problem; `auto` then runs on it.
    session = _open(ort, path, [CPU], cpu_threads, _QUIET)
    if provider == "cuda":
        raise ProviderError(f"--provider cuda: {note}; use --provider cpu or auto to run on the CPU")
    return session, SessionChoice(CPU, provider, cpu_threads, note)
