"""Section 4, scaling: time and peak memory of bm-run's segmenter against image size.

Each size runs in a fresh process. `working_mib` is the peak RSS above what the
process held once the image was in memory, i.e. the tiler's own memory plus the
label map (1 byte per pixel, the output itself). `beyond_labels_mib` takes
the label map out: the tiler keeps only a band of rows, so that part should
stay bounded while time grows with the pixel count.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bonemarrow.benchmarks.jobs import run_job
from bonemarrow.benchmarks.stats import summarize


def linear_fit(x: list[float], y: list[float]) -> dict:
    """Least-squares y = slope * x + intercept with its R^2 (1 = perfectly linear)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if xs.size < 2:
        return {"slope": None, "intercept": None, "r2": None}
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = ys - (slope * xs + intercept)
    total = ((ys - ys.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2)}


def bench_scaling(*, model: Path, sizes_mp: list[float], repeats: int, threads: int, workdir: Path,
                  progress: Callable[[str], None] | None = None) -> dict:
    rows = []
    for megapixels in sizes_mp:
        runs = []
        for index in range(repeats):
            if progress:
                progress(f"scaling {megapixels:g} MP run {index + 1}/{repeats}")
            runs.append(run_job("scaling", {"model": str(model), "megapixels": megapixels, "threads": threads},
                                workdir))
        last = runs[-1]
        wall = summarize([r["wall_s"] for r in runs], "s")
        rows.append({"megapixels": last["megapixels"], "width": last["width"], "height": last["height"],
                     "wall_s": wall,
                     "seconds_per_megapixel": summarize([r["wall_s"] / r["megapixels"] for r in runs], "s/MP"),
                     "peak_rss_mib": summarize([r["peak_rss_mib"] for r in runs], "MiB"),
                     "working_mib": summarize([r["working_mib"] for r in runs], "MiB"),
                     "beyond_labels_mib": summarize([r["working_mib"] - r["megapixels"] * 1e6 / 2**20 for r in runs],
                                                    "MiB"),
                     "image_mib": last["image_mib"], "labels_mib": last["megapixels"] * 1e6 / 2**20,
                     "tiles_total": last["tiles_total"],
                     "tiles_skipped": last["tiles_skipped"]})
    mps = [r["megapixels"] for r in rows]
    time_fit = linear_fit(mps, [r["wall_s"]["median"] for r in rows])
    working = [r["beyond_labels_mib"]["median"] for r in rows]
    return {"model": str(model), "repeats": repeats, "threads": threads, "rows": rows,
            "time_fit": {**time_fit, "unit": "s per MP"},
            "beyond_labels_memory_growth": (working[-1] / working[0]) if len(working) > 1 and working[0] > 0 else None,
            "pixel_growth": (mps[-1] / mps[0]) if len(mps) > 1 else None}
