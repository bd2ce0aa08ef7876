"""Held-out evaluation of a checkpoint: each member and the ensemble, per image.

Unlike validation, nothing is chosen here: the ensemble uses the member weights
stored in the checkpoint, so the figures are an honest estimate on images the
training never saw. Whole images go through the runtime's tiler (the code bm-run
uses); each member runs once per image and the ensemble is their weighted sum,
which is exact because the tiler's blending is linear.

    python -m bonemarrow.training.evaluate CHECKPOINT DATASET [--split test] [-o report.json]
"""
from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import torch

from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, fail, first_line, quiet_option, threads_option
from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.runtime.labels import CLASSES
from bonemarrow.runtime.metrics import evaluate_pair
from bonemarrow.training.checkpoint import CheckpointError, load_checkpoint
from bonemarrow.training.data import DatasetError, load_dataset
from bonemarrow.training.models.registry import DEFAULT_TILE, TILE_RANGE
from bonemarrow.training.trainer import percent
from bonemarrow.training.validate import ENSEMBLE, member_probabilities


def summarise(per_image: list[dict]) -> dict:
    """Mean Dice per class over images (NaN where a class is absent from both maps), density error mean and max."""
    dice = {}
    for name in CLASSES:
        values = [r["dice"][name] for r in per_image if not math.isnan(r["dice"][name])]
        dice[name] = float(np.mean(values)) if values else math.nan
    errors = [r["relative_density_error"] for r in per_image if not math.isnan(r["relative_density_error"])]
    # The worst image per tissue class: a model that fails on one kind of scan shows here, not in the mean.
    worst = {}
    for name in CLASSES[1:]:
        values = [r["dice"][name] for r in per_image if not math.isnan(r["dice"][name])]
        worst[name] = float(np.min(values)) if values else math.nan
    tissue = [float(np.nanmean([r["dice"][name] for name in CLASSES[1:]])) for r in per_image
              if not all(math.isnan(r["dice"][name]) for name in CLASSES[1:])]
    return {
        "dice": dice,
        "dice_min": worst,
        "tissue_dice_mean": float(np.mean(tissue)) if tissue else math.nan,
        "density_error_mean": float(np.mean(errors)) if errors else math.nan,
        "density_error_max": float(np.max(errors)) if errors else math.nan,
        "images": len(per_image),
    }


def evaluate_checkpoint(checkpoint: Path, dataset: Path, split: str = "test", *, tile: int | None = None,
                        overlap: float = 0.25, batch_size: int = 4, progress: bool = True) -> dict:
    model, config = load_checkpoint(checkpoint)
    model.eval()
    data = load_dataset(dataset, splits=(split,))
    samples = data.split(split)
    if not samples:
        raise DatasetError(f"{dataset}: no items in the {split!r} split")
    tile = tile or config.get("tile") or DEFAULT_TILE  # the config's tile was checked when it was read
    weights = [float(w) for w in model.member_weights]
    rows: dict[str, list[dict]] = {name: [] for name in [*model.member_names, ENSEMBLE]}
    from tqdm import tqdm

    for sample in tqdm(samples, desc="evaluate", unit="img", disable=not progress):
        probs = member_probabilities(model, sample, torch.device("cpu"), tile=tile, overlap=overlap,
                                     batch_size=batch_size, amp_dtype=None)
        probs[ENSEMBLE] = sum(w * probs[name] for w, name in zip(weights, model.member_names))
        for who, p in probs.items():
            row = evaluate_pair(p.argmax(axis=0).astype(np.uint8), sample.labels)
            row["name"] = sample.name
            rows[who].append(row)
    return {
        "checkpoint": str(checkpoint),
        "dataset": str(dataset),
        "split": split,
        "tile": tile,
        "overlap": overlap,
        "member_weights": dict(zip(model.member_names, weights)),
        "summary": {who: summarise(r) for who, r in rows.items()},
        "per_image": rows,
    }


def format_summary(report: dict) -> str:
    """Dice per class, and the relative bone density error in percent (as bm-eval and bm-train print it)."""
    header = f"{'':12s}" + "".join(f"{name:>12s}" for name in CLASSES) + f"{'dens.err mean':>15s}{'max':>8s}"
    lines = [header]
    for who, s in report["summary"].items():
        lines.append(f"{who:12s}" + "".join(f"{s['dice'][name]:12.3f}" for name in CLASSES)
                     + f"{percent(s['density_error_mean']):>15s}{percent(s['density_error_max']):>8s}")
    return "\n".join(lines)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the full report (per image too) as JSON.")
@click.option("--tile", type=click.IntRange(*TILE_RANGE), default=None, help="Tile size (default: the checkpoint's).")
@threads_option(help="CPU threads for PyTorch.")
@quiet_option(help="No progress bar.")
def main(checkpoint, dataset, split, output, tile, threads, quiet):
    """Dice per class and bone density error of each member and the ensemble on a held-out split."""
    if threads:
        torch.set_num_threads(threads)
    try:
        report = evaluate_checkpoint(checkpoint, dataset, split, tile=tile, progress=not quiet)
    except (CheckpointError, DatasetError) as error:
        fail(first_line(error))
    click.echo(format_summary(report))
    if output:
        write_json_atomic(output, report)


if __name__ == "__main__":
    main()
