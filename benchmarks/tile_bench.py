"""Section 1, per tile: PyTorch eager against onnxruntime per precision, batch 1..8.

Every backend runs the same weights on the same uint8 tiles (the model's own
tile size). GFLOP/s counts the PyTorch model's floating-point work per tile
(torch's FLOP counter: 2 per multiply-add, convolutions and matmuls) for every
backend, so int8 and fp16 are quoted in "fp32-equivalent" GFLOP/s; the ratio to
the machine's measured GEMM peak says how much of the CPU a backend uses. CUDA
rows appear only when a CUDA device really runs them; otherwise the row says why not.
PyTorch CUDA fp32 lets cuDNN use TF32 (PyTorch's default for convolutions), so its
rows are compared with a TF32-enabled matmul peak; fp16 rows with an fp16 one.
onnxruntime CUDA rows run the way bm-run does: the runtime's LoadedModel with IO
binding (fixed input and output buffers, one set per batch shape: each row is one
shape) and the default CudaSettings; like PyTorch's rows they end with the output
in host memory.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bonemarrow.benchmarks.models import ModelSet, torch_predict
from bonemarrow.benchmarks.stats import inverse, scaled, summarize, time_call
from bonemarrow.runtime.contract import PRECISIONS
from bonemarrow.runtime.errors import first_line


def tile_flops(model, tile: int) -> float:
    """Floating-point operations of one (3, tile, tile) forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.full((1, 3, tile, tile), 128, dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(image)
    return float(counter.get_total_flops())


def backends(models: ModelSet, threads: int, devices: tuple[str, ...] = ("cpu", "cuda")
             ) -> list[tuple[str, str, str, Callable | None, str]]:
    """(backend, precision, device, predict or None, why-not) for every row to measure on `devices`."""
    rows = []
    if "cpu" in devices:
        rows.extend(_cpu_rows(models, threads))
    if "cuda" in devices:
        rows.extend(_cuda_rows(models))
    return rows


def _cpu_rows(models: ModelSet, threads: int) -> list[tuple]:
    from bonemarrow.runtime.contract import INPUT_NAME, OUTPUT_NAME
    from bonemarrow.runtime.providers import open_session

    rows = [("pytorch", "fp32", "cpu", torch_predict(models.torch_model, "cpu"), "")]
    for precision in PRECISIONS:
        path = models.onnx.get(precision)
        if path is None:
            if precision in models.missing:
                rows.append(("onnxruntime", precision, "cpu", None, models.missing[precision]))
            continue
        session, _ = open_session(path, "cpu", threads)
        rows.append(("onnxruntime", precision, "cpu", _ort_predict(session, INPUT_NAME, OUTPUT_NAME), ""))
    return rows


def _cuda_rows(models: ModelSet) -> list[tuple]:
    import torch

    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.providers import ProviderError

    rows = []
    if torch.cuda.is_available():
        import copy

        torch.backends.cudnn.benchmark = True  # fixed shapes per row; the warm-up call pays for the search
        cuda_model = copy.deepcopy(models.torch_model).to("cuda")
        for precision in ("fp32", "fp16"):
            rows.append(("pytorch", precision, "cuda", _synced(torch_predict(cuda_model, "cuda", precision)), ""))
    else:
        rows.append(("pytorch", "fp32", "cuda", None, "no CUDA device visible to PyTorch"))
    for precision, path in models.onnx.items():
        try:
            model = open_model(path, "cuda")  # IO binding on, as bm-run runs it
        except ProviderError as error:
            rows.append(("onnxruntime", precision, "cuda", None, first_line(error, with_type=True)))
            continue
        rows.append(("onnxruntime", precision, "cuda", model.predict_view, ""))
    return rows


def _ort_predict(session, input_name: str, output_name: str) -> Callable:
    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: batch})[0]

    return predict


def _synced(predict: Callable) -> Callable:
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        out = predict(batch)
        torch.cuda.synchronize()
        return out

    return run


def _fraction(gflops: float, device: str, precision: str, cpu_peak: float, cuda_peaks: dict | None) -> float | None:
    """Achieved over measured peak: the CPU GEMM peak, or the GPU's matmul peak at the row's precision."""
    if device == "cpu":
        return gflops / cpu_peak if cpu_peak else None
    peak = (cuda_peaks or {}).get(precision)
    return gflops / peak["median"] if peak else None


def bench_tiles(models: ModelSet, *, batches: list[int], repeats: int, threads: int, peak_gflops: float,
                tile: int | None = None, progress: Callable[[str], None] | None = None,
                cuda_peaks: dict | None = None, devices: tuple[str, ...] = ("cpu", "cuda")) -> dict:
    """Latency and throughput per backend and batch size for one preset."""
    from bonemarrow.export.parity import synthetic_tiles

    tile = -(-int(tile or models.tile) // models.divisor) * models.divisor  # the model needs multiples
    flops = tile_flops(models.torch_model, tile)
    rows = []
    for backend, precision, device, predict, reason in backends(models, threads, devices):
        for batch in batches:
            row = {"preset": models.preset, "backend": backend, "precision": precision, "device": device,
                   "batch": batch, "tile": tile}
            if predict is None:
                rows.append({**row, "batch": None, "status": "not run", "reason": reason})
                break
            if progress:
                progress(f"{models.preset} {backend} {precision} {device} batch {batch}")
            tiles = synthetic_tiles(batch, tile, tile, seed=batch)
            try:
                seconds = summarize(time_call(lambda: predict(tiles), repeats, warmup=1), "s")
            except Exception as error:  # e.g. an fp16 kernel the CPU provider lacks
                rows.append({**row, "status": "not runnable", "reason": first_line(error, with_type=True)})
                break
            gflops = inverse(seconds, flops * batch / 1e9, "GFLOP/s")
            rows.append({**row, "status": "ok", "seconds_per_batch": seconds,
                         "ms_per_tile": scaled(seconds, 1000.0 / batch, "ms"),
                         "tiles_per_second": inverse(seconds, batch, "tiles/s"),
                         "gflops": gflops,
                         "fraction_of_peak": _fraction(gflops["median"], device, precision, peak_gflops, cuda_peaks)})
    return {"preset": models.preset, "tile": tile, "gflop_per_tile": flops / 1e9, "rows": rows}
