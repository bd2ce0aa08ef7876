"""bm-synth: write a dataset of synthetic biopsies (and, with --psd, hospital-style PSDs)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click
from tqdm import tqdm

from bonemarrow.training.dataset_io import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, write_item, write_manifest
from bonemarrow.training.synth import generate_biopsy, image_rng
from bonemarrow.training.synth.style import PROFILES


def parse_size(_ctx, _param, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value or "")
    if not match:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 1024x512")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 64 or height < 64:
        raise click.BadParameter(f"{width}x{height} is too small (64 px minimum per side)")
    return width, height


def synth_name(seed: int, index: int) -> str:
    return f"synth_s{seed}_{index:05d}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write (images/, labels/, manifest.json; psd/ with --psd).")
@click.option("--count", default=16, show_default=True, type=click.IntRange(min=1), help="Number of biopsies.")
@click.option("--size", default="3000x1000", show_default=True, callback=parse_size,
              help="Image size WIDTHxHEIGHT. Textures keep their pixel scale; the core follows the size.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Run seed; image i depends only on (seed, i), so a larger --count keeps the first images.")
@click.option("--profile", "profile_name", type=click.Choice(sorted(PROFILES)), default="train", show_default=True,
              help="Parameter ranges: train (what models learn from) or shifted (outside them, for a hold-out).")
@click.option("--psd", is_flag=True, help="Also write each biopsy as a layered PSD like the hospital's.")
@click.option("--val-fraction", default=DEFAULT_VAL_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("--test-fraction", default=DEFAULT_TEST_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(output: Path, count: int, size: tuple[int, int], seed: int, profile_name: str, psd: bool, val_fraction: float,
         test_fraction: float, quiet: bool) -> None:
    """Generate COUNT synthetic H&E bone marrow biopsies with exact labels into OUTPUT."""
    if val_fraction + test_fraction > 1:
        raise click.UsageError("--val-fraction plus --test-fraction must not exceed 1")
    width, height = size
    items = []
    for index in tqdm(range(count), desc="bm-synth", unit="image", disable=quiet, file=sys.stderr):
        name = synth_name(seed, index)
        rng = image_rng(seed, index)
        rgb, labels, params = generate_biopsy(rng, width, height, return_params=True, ranges=profile_name)
        extra = {}
        if psd:
            from bonemarrow.training.psd.synthetic import write_synthetic_psd

            psd_path = output / "psd" / f"{name}.psd"
            extra["psd"] = {"path": f"psd/{psd_path.name}",
                            "layout": write_synthetic_psd(psd_path, rgb, labels, image_rng(seed, index).spawn(1)[0])}
        items.append(write_item(output, name, rgb, labels, source=f"bm-synth seed={seed} index={index} profile={profile_name}",
                                val_fraction=val_fraction, test_fraction=test_fraction, params=params, **extra))
    write_manifest(output, items, generator={"seed": seed, "count": count, "width": width, "height": height,
                                              "profile": profile_name})
    if not quiet:
        click.echo(f"wrote {count} biopsies to {output}", err=True)
