"""Training curves as one PNG: losses, bone density error, and Dice per class."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.labels import CLASSES, COLORS


def _series(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for row in history:
        value = row.get(key)
        if value is not None and value != "" and not (isinstance(value, float) and math.isnan(value)):
            steps.append(int(row["step"]))
            values.append(float(value))
    return steps, values


def loss_pairs(members: Sequence[str]) -> list[tuple[str, str, str]]:
    """(who, training key, validation key) for the loss panel: the same loss of the same model on both sides.

    Each member's (and the ensemble's) training loss is a running mean of the same
    loss function since the previous validation; the optimised total (their sum,
    `train_loss` in metrics.csv) is on another scale and is not drawn.
    """
    return [(who, f"{who}/train_loss", f"{who}/loss") for who in [*members, "ensemble"]]


def plot_curves(history: Sequence[dict], path: str | os.PathLike, members: Sequence[str]) -> None:
    """Write the curves of a metrics history (rows of metrics.csv) to `path` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    who = [*members, "ensemble"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for index, (name, train_key, val_key) in enumerate(loss_pairs(members)):
        colour = colours[index % len(colours)]
        ax.plot(*_series(history, train_key), linestyle="--", color=colour, label=f"train {name}")
        ax.plot(*_series(history, val_key), marker="o", ms=3, color=colour, label=f"val {name}")
    ax.set_title("loss (CE + Dice): train crops (dashed) vs val images")
    ax.set_yscale("log")
    ax = axes[1]
    for name in who:
        steps, values = _series(history, f"{name}/density_error")
        ax.plot(steps, [100 * v for v in values], marker="o", ms=3, label=name)
    ax.set_title("relative bone density error, % (val, mean over images)")
    ax.set_ylabel("%")
    ax = axes[2]
    for name, colour in zip(CLASSES, COLORS):
        rgb = tuple(c / 255 for c in colour) if colour != (0, 0, 0) else (0.4, 0.4, 0.4)
        ax.plot(*_series(history, f"ensemble/dice_{name}"), marker="o", ms=3, color=rgb, label=name)
    ax.set_title("ensemble Dice per class (val)")
    ax.set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
