"""bm-prepare: convert a folder of annotation PSDs into a training dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_FAILED, EXIT_OK, choice, fail, printable,
                                           quiet_option, require)
from bonemarrow.runtime.contract import file_sha256
from bonemarrow.training.dataset_io import (DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, ensure_val_item,
                                            previous_item_names, remove_stale_items, write_item, write_manifest)
from bonemarrow.training.psd.roles import ROLES, parse_layer_overrides

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
"failures" in the manifest; the others go on. Two files whose names differ only
in the extension's or the name's case (X.psd, X.PSD, x.psd) would write the same
images/X.png: the first in sorted order is converted, the others fail.
Splits come from a hash of each name; when that leaves 'val' empty and there
are 2 or more items, one item is moved to 'val' so bm-train can validate.
The manifest is rebuilt from this run: items of an earlier run into DATASET that
this run does not produce are dropped, and their images/ and labels/ files removed.

\b
Exit codes: 0 every file converted; 1 some files failed (each reported on one
line; the rest went on); 2 usage error (or the `train` extra is missing).
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


def _say(kind: str, text: str) -> None:
    """One `kind: text` line on stderr that does not break the progress bar."""
    tqdm.write(f"{kind}: {printable(text)}", file=sys.stderr)


def clashes(sources: list[Path]) -> dict[Path, Path]:
    """{source: the earlier source it clashes with} for names that would write the same images/NAME.png.

    Names are compared case-insensitively (one file on Windows and macOS, and a
    trap everywhere); the first source in sorted order keeps the name.
    """
    first: dict[str, Path] = {}
    out = {}
    for source in sources:
        key = source.stem.casefold()
        if key in first:
            out[source] = first[key]
        else:
            first[key] = source
    return out


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.argument("psd_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder to write.")
@click.option("--layers", callback=_parse_layers, default=None,
              help=f"Layer roles ({', '.join(ROLES)}), e.g. scan=Background,fat=#3.")
@click.option("--overlap-winner", type=choice(["fat", "bone"]), default="fat", show_default=True,
              help="Class kept where the bone and fat layers overlap.")
@click.option("--allow-empty", default="bone", show_default=True, callback=_parse_allow_empty,
              help="Label layers that may be empty (comma list of bone, fat; 'none' for strict). "
                   "An empty tissue layer is always an error.")
@click.option("--val-fraction", default=DEFAULT_VAL_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@click.option("--test-fraction", default=DEFAULT_TEST_FRACTION, show_default=True, type=click.FloatRange(0, 1))
@quiet_option(help="No progress bar or notes; errors are still printed.")
def main(psd_dir: Path, output: Path, layers: dict[str, str], overlap_winner: str, allow_empty: tuple[str, ...],
         val_fraction: float, test_fraction: float, quiet: bool) -> None:
    if val_fraction + test_fraction > 1:
        raise click.UsageError("--val-fraction plus --test-fraction must not exceed 1")
    try:
        sources = sorted(path for path in psd_dir.iterdir() if path.is_file() and path.suffix.lower() == ".psd")
    except OSError as error:
        fail(f"{psd_dir}: cannot list the folder ({error.strerror or error})")
    if not sources:
        raise click.UsageError(f"no .psd files in {psd_dir}")
    require("psd_tools", "train", "bm-prepare")
    from bonemarrow.training.psd.convert import ConversionError, convert_psd

    earlier = previous_item_names(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        # From here on the old manifest would describe files this run replaces: it goes first, and the new
        # one is written when every item is on disk (an interrupted run leaves no manifest, not a wrong one).
        (output / "manifest.json").unlink(missing_ok=True)
    except OSError as error:
        fail(f"{output}: cannot write the dataset there ({error.strerror or error})")
    clash = clashes(sources)
    items, failures = [], []
    for source in tqdm(sources, desc="bm-prepare", unit="file", disable=quiet, file=sys.stderr):
        digest = file_sha256(source)
        if source in clash:
            reason = (f"its name clashes with {clash[source].name} (both would be written to "
                      f"images/{clash[source].stem}.png); rename one")
        else:
            try:
                result = convert_psd(source, layers, overlap_winner, allow_empty)
            except ConversionError as error:
                reason = str(error)
            else:
                items.append(write_item(output, source.stem, result.rgb, result.labels, source=source.name,
                                        sha256=digest, val_fraction=val_fraction, test_fraction=test_fraction,
                                        roles=result.roles, overlap_winner=overlap_winner,
                                        overlap_pixels=result.overlap_pixels))
                continue
        _say("error", f"{source}: {reason}")
        failures.append({"source": source.name, "sha256": digest, "reason": reason})
    promoted = ensure_val_item(items, val_fraction)
    if promoted and not quiet:
        _say("note", f"{promoted['name']}: moved to the 'val' split (the hash split left it empty; "
                     "bm-train needs a validation image)")
    write_manifest(output, items, failures, prepared_from=str(psd_dir))
    kept = {item["name"].casefold() for item in items}
    removed = remove_stale_items(output, [name for name in earlier if name.casefold() not in kept])
    if removed and not quiet:
        _say("note", f"removed {len(removed)} item(s) of an earlier run that this run did not produce "
                     f"({', '.join(removed[:3])}{', ...' if len(removed) > 3 else ''})")
    if not quiet:
        _say("done", f"{len(items)} converted, {len(failures)} failed -> {output}")
    sys.exit(EXIT_FAILED if failures else EXIT_OK)
