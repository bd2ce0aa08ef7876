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
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bonemarrow.runtime.contract import ModelContractError, check_model_file

PROVIDERS = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: cuDNN's exhaustive search re-benchmarks every new input shape; tiles at image
#: edges and varying batch sizes make HEURISTIC the right choice.
CUDA_OPTIONS = {
    "cudnn_conv_algo_search": "HEURISTIC",
    "arena_extend_strategy": "kSameAsRequested",
    "do_copy_in_default_stream": "1",
}
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
    note: str = ""  # why auto fell back to the CPU, if it did

    def describe(self) -> str:
        """The one line users see."""
        if self.provider == CUDA:
            return f"provider: CUDA ({CUDA})"
        threads = f", {self.threads} threads" if self.threads else ""
        reason = f"; {self.note}" if self.note else ""
        return f"provider: CPU ({CPU}{threads}){reason}"


def installed_runtimes() -> list[str]:
    """Distributions that provide the `onnxruntime` module."""
    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


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


def _try_cuda(ort, path: Path, threads: int | None) -> tuple[object | None, str]:
    """A CUDA session if CUDA really runs the model, else (None, reason)."""
    ort.set_default_logger_severity(_SILENT)
    captured: list[str] = []
    try:
        with silenced_output() as captured, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ORT warns in Python too when a provider is missing
            session = ort.InferenceSession(str(path), _options(ort, threads, _SILENT),
                                           providers=[(CUDA, dict(CUDA_OPTIONS)), CPU])
    except Exception as error:
        return None, f"CUDA could not start ({_first_error_line(error, captured)})"
    finally:
        ort.set_default_logger_severity(_QUIET)
    if session.get_providers()[0] != CUDA:
        detail = next((line.strip() for line in captured if line.strip()), "no CUDA device or libraries")
        return None, f"CUDA could not start ({detail[:200]})"
    return session, ""


def open_session(path: str | os.PathLike, provider: str = "auto", threads: int | None = None):
    """Return (onnxruntime.InferenceSession, SessionChoice) for the model at `path`.

    ModelContractError when the file is missing or onnxruntime cannot load it;
    ProviderError when `provider` is unknown or `cuda` cannot run.
    """
    if provider not in PROVIDERS:
        raise ProviderError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
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
    session, note = _try_cuda(ort, path, threads)
    if session is not None:
        return session, SessionChoice(CUDA, provider, threads)
    # CUDA did not run the model. A CPU session says whether the model itself is broken
    # (ModelContractError) or CUDA is the problem; `auto` then runs on it.
    session = _open(ort, path, [CPU], cpu_threads, _QUIET)
    if provider == "cuda":
        raise ProviderError(f"--provider cuda: {note}; use --provider cpu or auto to run on the CPU")
    return session, SessionChoice(CPU, provider, cpu_threads, note)
