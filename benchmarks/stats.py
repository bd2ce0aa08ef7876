"""Summaries of repeated measurements: a median with its spread, never a single lucky run.

Every figure the bench reports is `summarize(values, unit)`: the median, the
quartiles (IQR) and the extremes, plus how many runs they came from, so a
reader can tell a steady figure from a noisy one on a shared machine.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

SUMMARY_KEYS = ("median", "q1", "q3", "min", "max", "n", "unit")


def summarize(values: Sequence[float], unit: str) -> dict:
    """{median, q1, q3, min, max, n, unit} of repeated measurements (n >= 1)."""
    data = np.asarray([float(v) for v in values], dtype=np.float64)
    if data.size == 0:
        raise ValueError("summarize needs at least one value")
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "min": float(data.min()),
            "max": float(data.max()), "n": int(data.size), "unit": unit}


def scaled(summary: dict, factor: float, unit: str) -> dict:
    """The same summary in another unit (e.g. seconds per batch -> ms per tile); factor > 0 keeps order."""
    if factor <= 0:
        raise ValueError("factor must be positive (a negative one would swap min and max)")
    out = {k: summary[k] * factor for k in ("median", "q1", "q3", "min", "max")}
    return {**out, "n": summary["n"], "unit": unit}


def inverse(summary: dict, numerator: float, unit: str) -> dict:
    """numerator / x of a summary (e.g. seconds -> throughput): the quantiles swap sides."""
    return {"median": numerator / summary["median"], "q1": numerator / summary["q3"],
            "q3": numerator / summary["q1"], "min": numerator / summary["max"],
            "max": numerator / summary["min"], "n": summary["n"], "unit": unit}


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of `fn()` over `repeats` runs after `warmup` discarded ones."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fmt(summary: dict | None, digits: int = 3) -> str:
    """`median [q1-q3]` for tables; '-' when there is no figure."""
    if not summary:
        return "-"
    m, lo, hi = summary["median"], summary["q1"], summary["q3"]
    if summary["n"] < 4:  # quartiles of 1-3 runs are just interpolation: show the extremes
        lo, hi = summary["min"], summary["max"]
    return f"{m:.{digits}g} [{lo:.{digits}g}-{hi:.{digits}g}]"
