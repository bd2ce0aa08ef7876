"""bm-synth: write a dataset of synthetic biopsies (and, with --psd, hospital-style PSDs)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_OK, SizeType, fail, note, quiet_option,
                                           require)
from bonemarrow.training.dataset_io import (DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, ensure_val_item,
                                            previous_item_names, remove_stale_items, write_item, write_manifest)
from bonemarrow.training.synth.style import PROFILES

MIN_SIDE = 64


def synth_name(seed: int, index: int) -> str:
    return f"synth_s{seed}_{index:05d}"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write (images/, labels/, manifest.json; psd/ with --psd).")
@click.option("--count", default=16, show_default=True, type=click.IntRange(min=1), help="Number of biopsies.")
@click.option("--size", default="3000x1000", show_default=True, type=SizeType(minimum=MIN_SIDE, maximum=100_000),
              help="Image size WIDTHxHEIGHT. Textures keep their pixel scale; the core follows the size.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Run seed; image i depends only on (seed, i), so a larger --count keeps the first images.")
@click.option("--profile", "profile_name", type=click.Choice(sorted(PROFILES)), default="train", show_default=True,
              help="Parameter ranges: train (what models learn from) or shifted (outside them, for a hold-out).")
@click.option("--psd", is_flag=True, help="Also write each biopsy as a layered PSD like the hospital's.")
@click.option("--val-fraction", default=DEFAULT_VAL_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("--test-fraction", default=DEFAULT_TEST_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@quiet_option(help="No progress bar or notes; errors are still printed.")
def main(output: Path, count: int, size: tuple[int, int], seed: int, profile_name: str, psd: bool,
         val_fraction: float, test_fraction: float, quiet: bool) -> None:
    """Generate COUNT synthetic H&E bone marrow biopsies with exact labels into OUTPUT.

    Splits come from a hash of each name; when that leaves 'val' empty and there are
    2 or more images, one image is moved to 'val' so bm-train can validate. The
    manifest is rebuilt: items of an earlier run into OUTPUT that this run does not
    write are dropped and their files removed.

    \b
    Exit codes: 0 done; 2 usage error (or, with --psd, the `train` extra is missing).
    """
    if val_fraction + test_fraction > 1:
        raise click.UsageError("--val-fraction plus --test-fraction must not exceed 1")
    if psd:
        require("psd_tools", "train", "bm-synth --psd")
        require("PIL", "train", "bm-synth --psd")
    from bonemarrow.training.synth import generate_biopsy, image_rng

    width, height = size
    earlier = previous_item_names(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "manifest.json").unlink(missing_ok=True)  # rewritten once every item is on disk
    except OSError as error:
        fail(f"{output}: cannot write the dataset there ({error.strerror or error})")
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
        items.append(write_item(output, name, rgb, labels,
                                source=f"bm-synth seed={seed} index={index} profile={profile_name}",
                                val_fraction=val_fraction, test_fraction=test_fraction, params=params, **extra))
    promoted = ensure_val_item(items, val_fraction)
    if promoted and not quiet:
        note(f"{promoted['name']}: moved to the 'val' split (the hash split left it empty; "
             "bm-train needs a validation image)")
    write_manifest(output, items, generator={"seed": seed, "count": count, "width": width, "height": height,
                                              "profile": profile_name})
    kept = {item["name"].casefold() for item in items}
    stale = [name for name in earlier if name.casefold() not in kept]
    removed = remove_stale_items(output, stale)
    for name in stale:
        if "/" not in name and "\\" not in name and name not in ("", ".", ".."):
            (output / "psd" / f"{name}.psd").unlink(missing_ok=True)
    if removed and not quiet:
        note(f"removed {len(removed)} item(s) of an earlier run that this run did not write")
    if not quiet:
        click.echo(f"wrote {count} biopsies to {output}", err=True)
    sys.exit(EXIT_OK)
