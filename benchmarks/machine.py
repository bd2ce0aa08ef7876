"""Which machine a result came from, and what its CPU can do at best.

Results are filed under a machine name (CPU model + core count, or a hostname)
so runs from different machines sit side by side. The matrix-multiply peak is
measured, not looked up: a float32 GEMM through numpy's BLAS is about as close
to the CPU's real ceiling as Python gets, and GFLOP/s of the models are quoted
against it.
"""
from __future__ import annotations

import os
import platform
import re
import socket
import time

import numpy as np

from bonemarrow.benchmarks.stats import summarize


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def sanitise(text: str) -> str:
    """A file-name-safe slug: lowercase letters, digits and dashes."""
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"\b(processor|cpu|@)\b", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return re.sub(r"-{2,}", "-", slug)[:80] or "machine"


def machine_name(override: str | None = None) -> str:
    """`<cpu-model>-<N>c`, or a sanitised `override` (e.g. a hostname)."""
    if override:
        return sanitise(override)
    return f"{sanitise(cpu_model())}-{cpu_count()}c"


def gpu_info() -> list[dict]:
    """CUDA devices PyTorch sees (empty without torch or CUDA): never guessed."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [{"name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())]


def _versions() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "onnxruntime", "onnx", "cv2"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return versions


def matmul_peak(size: int = 2048, repeats: int = 5) -> dict:
    """Measured float32 GEMM throughput (GFLOP/s) through numpy's BLAS, all threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"method": f"numpy float32 matmul {size}x{size}", **summarize(rates, "GFLOP/s")}


def cuda_matmul_peaks(size: int = 8192, repeats: int = 5) -> dict:
    """Measured GPU matmul throughput (GFLOP/s) per precision PyTorch runs the model in; {} without CUDA.

    "fp32" allows TF32, as cuDNN does for PyTorch's float32 convolutions by default.
    """
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    peaks = {}
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            torch.backends.cuda.matmul.allow_tf32 = precision == "fp32"
            a = torch.randn(size, size, device="cuda", dtype=dtype)
            b = torch.randn(size, size, device="cuda", dtype=dtype)
            a @ b
            torch.cuda.synchronize()
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                a @ b
                torch.cuda.synchronize()
                rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
            peaks[precision] = {"method": f"torch {dtype} matmul {size}x{size}"
                                + (" (TF32 allowed)" if precision == "fp32" else ""), **summarize(rates, "GFLOP/s")}
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return peaks


def machine_info(name: str | None = None) -> dict:
    """The machine-info block of a report."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            total_kib = int(handle.readline().split()[1])
        memory_gib = round(total_kib / 2**20, 1)
    except (OSError, ValueError, IndexError):
        memory_gib = None
    return {
        "name": machine_name(name),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "gpus": gpu_info(),
        "versions": _versions(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
