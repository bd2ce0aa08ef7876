"""Section 2, whole images: the original project's inference against bm-run's defaults.

Both read the same seed-scale synthetic scan (PNG) and write a label PNG, each
run in a fresh process (clean peak RSS). Accuracy is measured against the
generator's ground truth; the speed-up is quoted together with whether bm-run's
accuracy is equal or better (mean tissue Dice within 0.005, density error at
most 0.005 worse), because a faster answer that is worse is no speed-up.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bonemarrow.benchmarks.jobs import run_job
from bonemarrow.benchmarks.stats import summarize
from bonemarrow.training.models.registry import DEFAULT_TILE

#: "Equal" accuracy: mean tissue Dice may be this much lower, density error this much higher.
DICE_TOLERANCE = 0.005
DENSITY_TOLERANCE = 0.005
STAGES = ("decode", "model", "blending", "writing")


def write_scan(workdir: Path, width: int, height: int, seed: int = 7) -> tuple[Path, np.ndarray, np.ndarray]:
    """A synthetic biopsy PNG and its ground truth (rgb and labels kept in memory too)."""
    from bonemarrow.runtime.io.writers import write_rgb_png
    from bonemarrow.training.synth import generate_biopsy

    rgb, labels = generate_biopsy(seed, width, height)
    path = workdir / f"scan_{width}x{height}.png"
    write_rgb_png(path, rgb)
    return path, rgb, labels


def accuracy(predicted: np.ndarray, truth: np.ndarray, trained: bool) -> dict:
    """Dice per class, densities and density errors against ground truth."""
    from bonemarrow.runtime.metrics import evaluate_pair

    metrics = evaluate_pair(predicted, truth)
    tissue = [metrics["dice"][c] for c in ("bone", "fat", "other")]
    tissue = [d for d in tissue if not math.isnan(d)]
    pred, true = metrics["predicted_density"], metrics["true_density"]
    return {"weights": "trained" if trained else "untrained",
            "dice": {k: _num(v) for k, v in metrics["dice"].items()},
            "mean_tissue_dice": float(np.mean(tissue)) if tissue else None,
            "predicted_density": _num(pred), "true_density": _num(true),
            "density_error": _num(abs(pred - true)),
            "relative_density_error": _num(metrics["relative_density_error"])}


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def equal_or_better(candidate: dict, baseline: dict) -> bool | None:
    """Is the candidate's accuracy at least the baseline's (within the tolerances)? None if unknown."""
    if candidate["mean_tissue_dice"] is None or baseline["mean_tissue_dice"] is None:
        return None
    dice_ok = candidate["mean_tissue_dice"] >= baseline["mean_tissue_dice"] - DICE_TOLERANCE
    if candidate["density_error"] is None or baseline["density_error"] is None:
        return dice_ok
    return dice_ok and candidate["density_error"] <= baseline["density_error"] + DENSITY_TOLERANCE


def _summaries(runs: list[dict]) -> dict:
    return {"wall_s": summarize([r["wall_s"] for r in runs], "s"),
            "peak_rss_mib": summarize([r["peak_rss_mib"] for r in runs], "MiB"),
            "stages_s": {s: summarize([r["stages_s"][s] for r in runs], "s") for s in STAGES}}


def whole_configs(checkpoint: Path, onnx: dict[str, Path], precisions: list[str], devices: list[str],
                  tile: int) -> tuple[dict[str, tuple[str, dict, str]], dict[str, str]]:
    """The rows to run: name -> (worker job kind, job settings, baseline row it is compared with).

    Per device: the original inference (PyTorch), then bm-run per ONNX precision. On
    CUDA also the runtime's tiler over PyTorch (fp32, fp16), since onnxruntime's CUDA
    provider needs the onnxruntime-gpu wheel. Rows that cannot run go to the second
    dict with the reason, so a report never shows a figure that was not measured.
    """
    configs: dict[str, tuple[str, dict, str]] = {}
    not_run: dict[str, str] = {}
    for device in devices:
        base = "baseline" if device == "cpu" else f"baseline {device}"
        configs[base] = ("baseline", {"checkpoint": str(checkpoint), "device": device}, base)
        if device != "cpu":
            for precision in ("fp32", "fp16"):
                configs[f"tiler + pytorch {precision} {device}"] = (
                    "tiler", {"checkpoint": str(checkpoint), "device": device, "precision": precision,
                              "tile": tile}, base)
        for precision in precisions:
            if precision not in onnx:
                continue
            name = f"bm-run {precision}" + ("" if device == "cpu" else f" {device}")
            reason = None if device == "cpu" else _ort_cuda_unusable(onnx[precision])
            if reason:
                not_run[name] = reason
                continue
            configs[name] = ("bmrun", {"model": str(onnx[precision]), "provider": device}, base)
    return configs, not_run


def _ort_cuda_unusable(model: Path) -> str | None:
    """Why onnxruntime cannot run `model` on CUDA here (the runtime's own provider check), or None."""
    from bonemarrow.runtime.providers import ProviderError, open_session

    try:
        open_session(model, "cuda")
    except ProviderError as error:
        return str(error)
    return None


def bench_whole(*, checkpoint: Path, onnx: dict[str, Path], trained: bool, width: int, height: int,
                repeats: int, threads: int, workdir: Path, precisions: list[str],
                progress: Callable[[str], None] | None = None, devices: list[str] = ("cpu",),
                tile: int = DEFAULT_TILE) -> dict:
    """Baseline vs bm-run (one row per ONNX precision asked for) on one synthetic scan, per device."""
    from bonemarrow.runtime.io.labels import read_label_png

    image, rgb, truth = write_scan(workdir, width, height)
    del rgb
    configs, not_run = whole_configs(checkpoint, onnx, precisions, list(devices), tile)
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for index in range(repeats):  # interleaved, so slow drift in machine load hits all alike
        for name, (kind, extra, _) in configs.items():
            if progress:
                progress(f"whole image {name} run {index + 1}/{repeats}")
            out = workdir / f"{name.replace(' ', '_').replace('+', 'and')}-{index}"
            out.mkdir(parents=True, exist_ok=True)
            job = {"image": str(image), "threads": threads, "outdir": str(out),
                   "labels_out": str(out / "labels.png"), **extra}
            runs[name].append(run_job(kind, job, workdir))
    rows = {}
    for name, results in runs.items():
        labels_path = results[-1]["labels"]
        row = {**_summaries(results), "accuracy": accuracy(read_label_png(labels_path), truth, trained),
               "device": configs[name][1].get("device") or configs[name][1].get("provider", "cpu")}
        for key in ("crops", "tiles_total", "tiles_skipped", "provider", "precision"):
            if key in results[-1]:
                row[key] = results[-1][key]
        rows[name] = row
    for name, row in rows.items():
        base_name = configs[name][2]
        if name == base_name:
            continue
        base = rows[base_name]
        b, c = base["wall_s"], row["wall_s"]
        row["compared_with"] = base_name
        row["speedup"] = {"median": b["median"] / c["median"], "min": b["min"] / c["max"],
                          "max": b["max"] / c["min"], "n": min(b["n"], c["n"]), "unit": "x"}
        row["memory_ratio"] = row["peak_rss_mib"]["median"] / base["peak_rss_mib"]["median"]
        row["accuracy_equal_or_better"] = equal_or_better(row["accuracy"], base["accuracy"])
    return {"image": {"width": width, "height": height, "megapixels": width * height / 1e6,
                      "tissue_fraction": float((truth > 0).mean()), "source": "bonemarrow.training.synth seed 7"},
            "repeats": repeats, "threads": threads, "devices": list(devices), "rows": rows, "not_run": not_run,
            "tolerances": {"mean_tissue_dice": DICE_TOLERANCE, "density_error": DENSITY_TOLERANCE}}
