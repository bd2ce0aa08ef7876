"""Slim a training checkpoint into the file that ships: weights and config only.

Training checkpoints carry optimizer and scheduler state (three times the
weights). A shipped checkpoint needs the weights alone; with --half the float
weights are stored as float16, halving the file again. Loading casts them back
to float32 (load_state_dict copies into the model's own dtype), so a model
exported from the slimmed file matches that file exactly; the rounding itself
changes the model slightly, so measure the shipped file, not the original.

    python -m bonemarrow.training.slim RUN/best_density.pt weights/NAME.pt [--half]
"""
from __future__ import annotations

import os
from pathlib import Path

import click
import torch

from bonemarrow.runtime.atomic import atomic_path
from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, fail, first_line
from bonemarrow.training.checkpoint import CheckpointError, model_from_payload, read_checkpoint

KEPT = ("format", "format_version", "config", "model")


def slim_checkpoint(source: str | os.PathLike, target: str | os.PathLike, *, half: bool = False) -> dict:
    """Write `target` with only KEPT entries of `source` (float weights as float16 with half=True)."""
    payload = read_checkpoint(source)
    model_from_payload(payload, source)  # refuse a checkpoint that would not load before writing anything
    slim = {key: payload[key] for key in KEPT}
    if half:
        slim["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    slim["config"] = {**payload["config"], "slimmed_from": Path(source).name, "stored_dtype":
                      "float16" if half else "float32"}
    with atomic_path(target) as tmp:
        torch.save(slim, tmp)
    return slim


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--half", is_flag=True, help="Store float weights as float16 (half the size).")
def main(source: Path, target: Path, half: bool) -> None:
    """Copy SOURCE's weights and config (no optimizer state) to TARGET."""
    try:
        slim_checkpoint(source, target, half=half)
    except CheckpointError as error:
        fail(first_line(error))
    click.echo(f"{target}: {target.stat().st_size / 1e6:.1f} MB (from {source.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
