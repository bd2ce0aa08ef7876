"""python -m bonemarrow.benchmarks.holdout_synth -o DIR --count N --size WxH --seed S [-q]

Writes a hold-out TEST set in the project's dataset format (images/, labels/,
manifest.json; every item in split "test"). Item i is generate(S + i, W, H)
and is named holdout_<S + i>, so the same seed always gives the same file
under the same name, and sets made from disjoint seed ranges never overlap.
"""
from __future__ import annotations

import sys

import click
from tqdm import tqdm

from bonemarrow.training.dataset_io import write_item, write_manifest

from .generator import GENERATOR, VERSION, generate


def _size(_ctx, _param, value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 3000x1000, got {value!r}") from None
    if width < 96 or height < 48:
        raise click.BadParameter(f"at least 96x48, got {value}")
    return width, height


def item_name(seed: int) -> str:
    return f"holdout_{seed}"


@click.command()
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--count", default=8, show_default=True, type=click.IntRange(min=1), help="Number of images.")
@click.option("--size", default="3000x1000", show_default=True, callback=_size, help="Image size WxH.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the first image.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(out: str, count: int, size: tuple[int, int], seed: int, quiet: bool) -> None:
    """Generate independent synthetic biopsies for HOLD-OUT testing only (never train or select on them)."""
    width, height = size
    items = []
    for index in tqdm(range(count), desc="holdout_synth", unit="image", disable=quiet):
        item_seed = seed + index
        rgb, labels, params = generate(item_seed, width, height)
        source = f"{GENERATOR} v{VERSION} seed {item_seed}"
        items.append(write_item(out, item_name(item_seed), rgb, labels, source=source, val_fraction=0.0,
                                test_fraction=1.0, params=params))
    write_manifest(out, items, generator=GENERATOR, generator_version=VERSION, seed=seed, count=count,
                   size=[width, height], purpose="hold-out test set only: never train or select models on it")
    if not quiet:
        click.echo(f"wrote {count} hold-out images to {out}")


if __name__ == "__main__":
    sys.exit(main())
