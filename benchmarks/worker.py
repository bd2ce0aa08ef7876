"""One measured job in its own process, so its peak RSS is its own.

    python -m bonemarrow.benchmarks.worker JOB.json

JOB.json names the job (`baseline`, `tiler`, `bmrun` or `scaling`) and its inputs; the
result JSON is written to job["result"]. Each job warms its model up before the
clock starts (first-call allocation and thread start are not what a user waits
for on a batch), then times its stages.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.training.models.registry import DEFAULT_TILE


def _status_mib(field: str) -> float | None:
    """A VmHWM/VmRSS line of /proc/self/status in MiB (Linux), None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set (since start or the last `reset_peak_rss`).

    VmHWM, not getrusage: on Linux ru_maxrss survives fork+exec, so a worker
    started by a parent holding torch would report the parent's size.
    """
    peak = _status_mib("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def current_rss_mib() -> float:
    value = _status_mib("VmRSS")
    return float("nan") if value is None else value


def reset_peak_rss() -> bool:
    """Make the peak start again from the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _torch_model(job: dict):
    """The checkpoint's ensemble in eval mode on job["device"] (cpu or cuda)."""
    import torch

    torch.set_num_threads(int(job["threads"]))
    from bonemarrow.training.checkpoint import load_checkpoint

    model, _ = load_checkpoint(job["checkpoint"], map_location="cpu")
    device = job.get("device", "cpu")
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    return model.eval().to(device)


def _timed_torch_predict(job: dict, warmup_size: int):
    """(predict, model, seconds-so-far getter): PyTorch on the job's device and precision, warmed up."""
    from bonemarrow.benchmarks.models import torch_predict

    model = _torch_model(job)
    inner = torch_predict(model, job.get("device", "cpu"), job.get("precision", "fp32"))
    inner(np.full((1, 3, warmup_size, warmup_size), 200, np.uint8))  # warm-up
    spent = [0.0]

    def predict(batch: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = inner(batch)  # returns host memory: the GPU work is finished when it does
        spent[0] += time.perf_counter() - start
        return out

    return predict, model, lambda: spent[0]


def _staged_run(job: dict, infer, model_seconds) -> dict:
    """Decode job["image"], infer(rgb) -> (labels, extra result keys), write the label PNG; time each stage."""
    from bonemarrow.runtime.io.readers import read_rgb
    from bonemarrow.runtime.io.labels import write_label_png

    warm = model_seconds()
    start = time.perf_counter()
    rgb = read_rgb(job["image"]).rgb
    decoded = time.perf_counter()
    labels, extra = infer(rgb)
    inferred = time.perf_counter()
    write_label_png(job["labels_out"], labels)
    end = time.perf_counter()
    model = model_seconds() - warm
    return {"wall_s": end - start, "peak_rss_mib": peak_rss_mib(), "labels": job["labels_out"],
            "device": job.get("device", "cpu"), "precision": job.get("precision", "fp32"), **extra,
            "stages_s": {"decode": decoded - start, "model": model,
                         "blending": inferred - decoded - model, "writing": end - inferred}}


def run_baseline(job: dict) -> dict:
    """The original project's inference: decode, PyTorch over 480-px crops, write the label PNG."""
    from bonemarrow.benchmarks.baseline import baseline_inference

    predict, _, model_seconds = _timed_torch_predict(job, 512)
    if job.get("device", "cpu").startswith("cuda"):  # the original's 480 -> 512 crops and its edge crops
        for shape in ((512, 512), (256, 512), (512, 256), (256, 256)):
            predict(np.full((1, 3, *shape), 200, np.uint8))  # cuDNN picks kernels per shape: not timed

    def infer(rgb: np.ndarray):
        labels, crops = baseline_inference(rgb, predict)
        return labels, {"crops": crops}

    return _staged_run(job, infer, model_seconds)


def run_tiler(job: dict) -> dict:
    """bm-run's tiling (same code and defaults) over a PyTorch model: how the runtime's design does on a GPU.

    The runtime's ONNX path needs onnxruntime-gpu for CUDA; this row shows what the
    tiler gives a PyTorch user on the same device, through the same sliding window.
    """
    from bonemarrow.runtime.tiling import sliding_window_inference

    tile = int(job.get("tile") or DEFAULT_TILE)
    batch = int(job.get("batch_size", 4))
    predict, model, model_seconds = _timed_torch_predict(job, tile)
    predict(np.full((batch, 3, tile, tile), 200, np.uint8))  # the batch shape the tiler will send

    def infer(rgb: np.ndarray):
        result = sliding_window_inference(rgb, predict, tile=tile, overlap=float(job.get("overlap", 0.25)),
                                          batch_size=batch, divisor=int(model.divisor), blend="gaussian",
                                          skip_background=True, pad_mode="constant")
        return result.labels, {"tiles_total": result.tiles_total, "tiles_skipped": result.tiles_skipped}

    return _staged_run(job, infer, model_seconds)


def _bmrun_model(job: dict):
    """(model, config) as bm-run opens them: IO binding and fixed-shape batches on CUDA, warmed up.

    The warm-up runs the one batch shape the tiler will send (cuDNN picks its algorithms
    per shape; a CUDA graph is captured per shape), so the clock starts on a ready model.
    """
    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.providers import CUDA
    from bonemarrow.runtime.tiling import TilingConfig

    model = open_model(job["model"], job.get("provider", "cpu"), int(job["threads"]))
    config = TilingConfig(fixed_batch=model.provider == CUDA).resolved(model.info)
    batch = config.batch_size if config.fixed_batch else 1
    for _ in range(2 if config.fixed_batch else 1):
        model.predict_view(np.full((batch, 3, config.tile, config.tile), 200, np.uint8))
    return model, config


def run_bmrun(job: dict) -> dict:
    """bm-run's defaults through the batch pipeline (threads overlap decode, model and writing)."""
    from bonemarrow.runtime.batch.local import run_batch
    from bonemarrow.runtime.io.labels import read_label_png, write_label_png
    from bonemarrow.runtime.io.readers import read_rgb
    from bonemarrow.runtime.io.writers import LabelPngWriter, write_rgb_png
    from bonemarrow.runtime.overlay import overlay

    model, config = _bmrun_model(job)
    image, outdir = Path(job["image"]), Path(job["outdir"])
    start = time.perf_counter()
    report = run_batch(model, config, [(image, "scan")], outdir, overwrite=True, show_progress=False,
                       log=lambda _line: None, error=lambda line: print(line, file=sys.stderr))
    wall = time.perf_counter() - start
    peak = peak_rss_mib()
    if report.failures:
        raise RuntimeError(f"bm-run failed: {report.failures[0]['error']}")
    record = report.images["scan"]
    # Decode and writing timed again on their own: in the pipeline they overlap the model.
    t0 = time.perf_counter()
    loaded = read_rgb(image)
    t1 = time.perf_counter()
    labels_path = outdir / LabelPngWriter().filename("scan")
    labels = read_label_png(labels_path)
    t2 = time.perf_counter()
    write_label_png(outdir / "rewrite_labels.png", labels)
    write_rgb_png(outdir / "rewrite_overlay.png", overlay(loaded.rgb, labels))
    t3 = time.perf_counter()
    return {"wall_s": wall, "peak_rss_mib": peak, "tiles_total": record["tiles_total"],
            "tiles_skipped": record["tiles_skipped"], "labels": str(labels_path), "provider": model.provider,
            "stages_s": {"decode": t1 - t0, "model": record["model_seconds"],
                         "blending": record["seconds"] - record["model_seconds"], "writing": t3 - t2}}


def scaling_image(megapixels: float, seed: int = 5) -> np.ndarray:
    """A 3:1 scan of about `megapixels` MP: one <= 1 MP synthetic biopsy repeated (constant tissue share)."""
    from bonemarrow.training.synth import generate_biopsy

    width = int(round((megapixels * 1e6 * 3) ** 0.5))
    height = max(16, int(round(width / 3)))
    base_w, base_h = min(width, 1800), max(16, min(height, 600))
    base, _ = generate_biopsy(seed, max(16, base_w), base_h)
    image = np.empty((height, width, 3), dtype=np.uint8)  # filled block by block: no full-size temporaries
    for y in range(0, height, base_h):
        for x in range(0, width, base_w):
            h, w = min(base_h, height - y), min(base_w, width - x)
            image[y:y + h, x:x + w] = base[:h, :w]
    return image


def run_scaling(job: dict) -> dict:
    """Segment one synthetic scan of a given size; peak RSS above what the image itself holds."""
    from bonemarrow.runtime.segmenter import Segmenter

    model, config = _bmrun_model(job)
    segmenter = Segmenter(model, config)
    rgb = scaling_image(float(job["megapixels"]))
    reset_ok = reset_peak_rss()  # the generator's own peak is not the segmenter's
    before = current_rss_mib()
    start = time.perf_counter()
    result = segmenter.segment(rgb)
    wall = time.perf_counter() - start
    peak = peak_rss_mib()
    return {"wall_s": wall, "model_s": result.model_seconds, "peak_rss_mib": peak, "rss_before_mib": before,
            "peak_reset": reset_ok,
            "working_mib": peak - before, "image_mib": rgb.nbytes / 2**20, "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]), "megapixels": rgb.shape[0] * rgb.shape[1] / 1e6,
            "tiles_total": result.tiles_total, "tiles_skipped": result.tiles_skipped}


JOBS = {"baseline": run_baseline, "tiler": run_tiler, "bmrun": run_bmrun, "scaling": run_scaling}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bonemarrow.benchmarks.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    result = JOBS[job["kind"]](job)
    write_json_atomic(job["result"], result, indent=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
