"""PNG charts for bm-eval, like the original project's figures.

matplotlib is the optional `eval` extra and is imported only here, lazily, so the
runtime stays light: without it bm-eval still writes its CSV and JSON.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.evaluation.folders import Evaluation
from bonemarrow.runtime.labels import CLASSES, COLORS

CHARTS = ("dice_per_image.png", "density_error.png", "density_scatter.png", "confusion.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def _colour(index: int):
    rgb = np.array(COLORS[index]) / 255.0
    return rgb if index else (0.55, 0.55, 0.55)  # background shown grey, not black


def write_charts(evaluation: Evaluation, outdir: Path) -> list[Path]:
    """Write the charts; return their paths."""
    plt = _pyplot()
    images = evaluation.images
    names = [r["name"] for r in images]
    width = max(6.0, 0.45 * len(images) + 2)
    written = []

    fig, ax = plt.subplots(figsize=(width, 4))
    x = np.arange(len(images))
    bar = 0.8 / len(CLASSES)
    for k, cls in enumerate(CLASSES):
        values = [np.nan if r["dice"][cls] is None else r["dice"][cls] for r in images]
        ax.bar(x + (k - 1.5) * bar, values, bar, label=cls, color=_colour(k))
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Dice")
    ax.set_title("Dice per image and class")
    ax.legend(ncol=4, fontsize=8, loc="lower right")
    written.append(outdir / CHARTS[0])
    _save(fig, written[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(width, 4))
    errors = [np.nan if r["relative_density_error"] is None else 100 * r["relative_density_error"] for r in images]
    ax.bar(x, errors, 0.7, color=_colour(1))
    mean = evaluation.summary()["mean_relative_density_error"]
    if mean is not None:
        ax.axhline(100 * mean, color="k", linestyle="--", linewidth=1, label=f"mean {100 * mean:.1f}%")
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("relative bone density error (%)")
    ax.set_title("Bone density error per image")
    written.append(outdir / CHARTS[1])
    _save(fig, written[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    pairs = [(r["true_density"], r["predicted_density"]) for r in images
             if r["true_density"] is not None and r["predicted_density"] is not None]
    if pairs:
        true, predicted = np.array(pairs).T
        ax.scatter(true, predicted, color=_colour(1), edgecolor="k", zorder=3)
        top = max(true.max(), predicted.max()) * 1.1 or 1.0
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.legend(fontsize=8, loc="upper left")
    r = evaluation.summary()["density_correlation"]
    ax.set_title("Predicted vs true bone density" + (f" (r = {r:.3f})" if r is not None else ""))
    ax.set_xlabel("true bone density")
    ax.set_ylabel("predicted bone density")
    written.append(outdir / CHARTS[2])
    _save(fig, written[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    confusion = evaluation.confusion.astype(np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center",
                    color="white" if normalised[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (row-normalised)")
    written.append(outdir / CHARTS[3])
    _save(fig, written[-1])
    plt.close(fig)
    return written
