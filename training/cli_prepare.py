"""bm-prepare: convert a folder of annotation PSDs into a training dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from bonemarrow.runtime.contract import file_sha256
from bonemarrow.training.dataset_io import (DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, write_item,
                                            write_manifest)
from bonemarrow.training.psd.convert import ConversionError, convert_psd
from bonemarrow.training.psd.roles import parse_layer_overrides

HELP = """Convert every *.psd in PSD_DIR into DATASET (images/, labels/, manifest.json).

\b
Layer roles (first rule that applies):
  1. --layers scan=NAME,tissue=NAME,bone=NAME,fat=NAME  (a layer name, or #INDEX, 0 = bottom)
  2. names, any case: "no background" or *tissue* -> tissue; "Background" (exactly),
     *scan*, *raw*, *original* -> scan; *bone* -> bone; *fat* -> fat
  3. structure: scan = bottom layer; fat = the layer with a layer mask; of the two
     layers without a mask, the one covering more pixels is the tissue, the other bone.
A layer with a mask is read through its mask, one without through its alpha
(covered = value >= 128); layers land at their offsets, clipped to the canvas.
Labels: other = tissue - bone - fat; where bone and fat overlap, --overlap-winner wins.
A file that cannot be converted is reported on one line and listed under
"failures" in the manifest; the others go on. Exit code 1 if any failed.
"""


def _parse_allow_empty(_ctx, _param, value: str) -> tuple[str, ...]:
    roles = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if roles == ("none",):
        return ()
    bad = [role for role in roles if role not in ("bone", "fat")]
    if bad:
        raise click.BadParameter(f"expected a comma list of bone, fat (or none), got {value!r}")
    return roles


def _parse_layers(_ctx, _param, value: str | None) -> dict[str, str]:
    try:
        return parse_layer_overrides(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("psd_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write.")
@click.option("--layers", callback=_parse_layers, default=None, help="Layer roles, e.g. scan=Background,fat=#3.")
@click.option("--overlap-winner", type=click.Choice(["fat", "bone"]), default="fat", show_default=True,
              help="Class kept where the bone and fat layers overlap.")
@click.option("--allow-empty", default="bone", show_default=True, callback=_parse_allow_empty,
              help="Label layers that may be empty (comma list of bone, fat; 'none' for strict). "
                   "An empty tissue layer is always an error.")
@click.option("--val-fraction", default=DEFAULT_VAL_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("--test-fraction", default=DEFAULT_TEST_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(psd_dir: Path, output: Path, layers: dict[str, str], overlap_winner: str, allow_empty: tuple[str, ...],
         val_fraction: float, test_fraction: float, quiet: bool) -> None:
    if val_fraction + test_fraction > 1:
        raise click.UsageError("--val-fraction plus --test-fraction must not exceed 1")
    sources = sorted(path for path in psd_dir.iterdir() if path.is_file() and path.suffix.lower() == ".psd")
    if not sources:
        raise click.UsageError(f"no .psd files in {psd_dir}")
    items, failures = [], []
    for source in tqdm(sources, desc="bm-prepare", unit="file", disable=quiet, file=sys.stderr):
        digest = file_sha256(source)
        try:
            result = convert_psd(source, layers, overlap_winner, allow_empty)
        except ConversionError as error:
            tqdm.write(f"bm-prepare: {source}: {error}", file=sys.stderr)
            failures.append({"source": source.name, "sha256": digest, "reason": str(error)})
            continue
        items.append(write_item(output, source.stem, result.rgb, result.labels, source=source.name, sha256=digest,
                                val_fraction=val_fraction, test_fraction=test_fraction, roles=result.roles,
                                overlap_winner=overlap_winner, overlap_pixels=result.overlap_pixels))
    write_manifest(output, items, failures, prepared_from=str(psd_dir))
    if not quiet:
        click.echo(f"bm-prepare: {len(items)} converted, {len(failures)} failed -> {output}", err=True)
    sys.exit(1 if failures else 0)
