"""How models hold up off their training distribution: checkpoints x hold-out sets, one table.

    python -m bonemarrow.benchmarks.robustness \\
        --checkpoint shipped=weights/bonemarrow_compact.pt --checkpoint new=runs/x/best_density.pt \\
        --holdout in-distribution=data/v2_test --holdout shifted=data/shifted_test \\
        -o benchmarks/results/robustness

Each cell runs the checkpoint's ensemble (and members) over every test image
of the hold-out through the runtime's tiler (training.evaluate) and reports
Dice per class, the worst image's Dice per tissue class, and the relative bone
density error. Cells are cached in OUT.json by the checkpoint's and the
dataset manifest's hashes, so an interrupted or extended run redoes nothing.
Writes OUT.json, OUT.md and OUT.png. No hold-out listed here may be used to
choose anything: they are for reporting only.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import click

from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, fail, quiet_option, threads_option
from bonemarrow.runtime.contract import file_sha256
from bonemarrow.runtime.atomic import write_text_atomic
from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.runtime.labels import CLASSES

TISSUE = CLASSES[1:]


def _named(values: tuple[str, ...], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected NAME=PATH", param_hint=what)
        if name in out:
            raise click.BadParameter(f"{name!r} given twice", param_hint=what)
        out[name] = Path(path)
    return out


def cell_key(checkpoint: Path, dataset: Path) -> str:
    manifest = (dataset / "manifest.json").read_bytes()
    return f"{file_sha256(checkpoint)[:16]}:{hashlib.sha256(manifest).hexdigest()[:16]}"


def cell_of(report: dict, checkpoint: str, holdout: str) -> dict | None:
    """The cached evaluation of one checkpoint on one hold-out, or None if not run."""
    key = report["cells"].get(f"{checkpoint}|{holdout}")
    return report["cache"].get(key) if key else None


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


def render_markdown(report: dict) -> str:
    lines = ["# Robustness: checkpoints on hold-out sets", "",
             "Ensemble figures over each hold-out's test images (whole images through the runtime's tiler). "
             "Dice is the mean over images; *worst* is the lowest per-image Dice of any tissue class; density "
             "error is |predicted - true| / true bone density, mean (max) over images with bone.", ""]
    for holdout in report["holdouts"]:
        lines += [f"## {holdout}", "",
                  "| checkpoint | tissue Dice | background | bone | fat | other | worst | density error |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in report["checkpoints"]:
            cell = cell_of(report, name, holdout)
            if cell is None:
                lines.append(f"| {name} | not run |||||||")
                continue
            s = cell["summary"]["ensemble"]
            worst = min((v for v in s["dice_min"].values() if v is not None and not math.isnan(v)), default=math.nan)
            lines.append(f"| {name} | {_fmt(s['tissue_dice_mean'])} | "
                         + " | ".join(_fmt(s["dice"][c]) for c in CLASSES)
                         + f" | {_fmt(worst)} | {_fmt(s['density_error_mean'], True)} "
                           f"({_fmt(s['density_error_max'], True)}) |")
        lines.append("")
    lines += ["Command: `" + report.get("command", "") + "`", ""]
    return "\n".join(lines)


def draw_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    holdouts, names = report["holdouts"], report["checkpoints"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        dice, error = [], []
        for holdout in holdouts:
            cell = cell_of(report, name, holdout)
            s = cell["summary"]["ensemble"] if cell else None
            dice.append(s["tissue_dice_mean"] if s else np.nan)
            error.append(100 * s["density_error_mean"] if s else np.nan)
        x = np.arange(len(holdouts)) + (i - (len(names) - 1) / 2) * width
        axes[0].bar(x, dice, width, label=name)
        axes[1].bar(x, error, width, label=name)
    for ax, title in zip(axes, ("mean tissue Dice (bone, fat, other)", "bone density error, mean %")):
        ax.set_xticks(range(len(holdouts)), holdouts, rotation=15)
        ax.set_title(title)
    axes[0].set_ylim(0, 1)
    axes[0].axhline(0.88, color="grey", lw=0.8, ls="--")
    axes[1].axhline(8, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, help="NAME=CHECKPOINT.pt (repeatable).")
@click.option("--holdout", "holdouts", multiple=True, required=True, help="NAME=DATASET (repeatable); its test split.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="OUT: writes OUT.json, OUT.md, OUT.png.")
@click.option("--tile", type=click.IntRange(32, 4096), default=None, help="Tile size [default: the checkpoint's].")
@threads_option()
@quiet_option()
def main(checkpoints, holdouts, output, tile, threads, quiet):
    """Evaluate every CHECKPOINT on every HOLDOUT's test split; one table per hold-out."""
    import torch

    from bonemarrow.training.checkpoint import CheckpointError
    from bonemarrow.training.data import DatasetError
    from bonemarrow.training.evaluate import evaluate_checkpoint

    named_checkpoints = _named(checkpoints, "--checkpoint")
    named_holdouts = _named(holdouts, "--holdout")
    for path in [*named_checkpoints.values(), *(p / "manifest.json" for p in named_holdouts.values())]:
        if not path.is_file():
            fail(f"{path}: not found")
    if threads:
        torch.set_num_threads(threads)
    json_path = output.with_suffix(".json")
    cache: dict = {}
    if json_path.is_file():
        try:
            cache = json.loads(json_path.read_text()).get("cache", {})
        except ValueError:
            cache = {}
    report = {"checkpoints": list(named_checkpoints), "holdouts": list(named_holdouts), "cells": {},
              "command": "python -m bonemarrow.benchmarks.robustness " + " ".join(sys.argv[1:]), "cache": cache}
    for name, checkpoint in named_checkpoints.items():
        for holdout, dataset in named_holdouts.items():
            key = cell_key(checkpoint, dataset)
            if key not in cache:
                if not quiet:
                    click.echo(f"evaluating {name} on {holdout} ...", err=True)
                try:
                    result = evaluate_checkpoint(checkpoint, dataset, "test", tile=tile, progress=not quiet)
                except (CheckpointError, DatasetError) as error:
                    fail(str(error))
                cache[key] = {"summary": result["summary"], "per_image": result["per_image"],
                              "checkpoint": str(checkpoint), "dataset": str(dataset)}
                write_json_atomic(json_path, report)  # keep finished cells if interrupted
            report["cells"][f"{name}|{holdout}"] = key
    write_json_atomic(json_path, report)
    write_text_atomic(output.with_suffix(".md"), render_markdown(report))
    draw_chart(report, output.with_suffix(".png"))
    if not quiet:
        click.echo(render_markdown(report))


if __name__ == "__main__":
    main()
