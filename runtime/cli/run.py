"""bm-run: segment scans into label maps, overlays and a table of tissue fractions.

Exit codes: 0 every input done, 1 some inputs failed (each reported in one line,
the rest still processed), 2 usage error (bad option, unusable model or provider).
Options become a frozen CudaSettings and an opened model, then a frozen
TilingConfig (fixed-shape batches by default where the model runs on CUDA),
handed to the local batch runner; nothing is read back from them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_FAILED, choice, fail, quiet_option,
                                           threads_option)
from bonemarrow.runtime.io.readers import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, find_images, max_pixels_default
from bonemarrow.runtime.providers import CUDNN_SEARCHES, PROVIDERS


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for NAME_labels.png, NAME_overlay.png, results.csv and results.json.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX model (default: $BONEMARROW_MODEL, else models_onnx/bonemarrow_compact.onnx).")
@click.option("--provider", type=choice(PROVIDERS), default="auto", show_default=True,
              help="auto = CUDA when it really works, else CPU; cuda fails instead of falling back.")
@click.option("--tile", type=click.IntRange(min=1), default=None,
              help="Tile size in pixels (default: the model's recommended tile).")
@click.option("--overlap", type=click.FloatRange(0, 1, max_open=True), default=0.25, show_default=True,
              help="Fraction of a tile shared with its neighbour.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles per model call.")
@click.option("--fixed-batch/--no-fixed-batch", default=None,
              help="Pad each image's last batch to --batch tiles so every model call has one shape "
                   "(default: on where the model runs on CUDA).")
@click.option("--cudnn-search", type=choice([s.lower() for s in CUDNN_SEARCHES]), default="heuristic",
              show_default=True, help="CUDA: cuDNN's convolution algorithm search (exhaustive: once per shape).")
@click.option("--cuda-graph", is_flag=True,
              help="CUDA: capture and replay a CUDA graph per batch shape (falls back, with a note, where "
                   "onnxruntime refuses the model).")
@click.option("--no-skip-background", is_flag=True, help="Run the model on empty glass too.")
@click.option("--recursive", is_flag=True, help="Look for images in sub-folders too.")
@click.option("--overwrite", is_flag=True, help="Redo images that already have results in OUTDIR.")
@threads_option()
@quiet_option()
def main(inputs, outdir, model, provider, tile, overlap, batch, fixed_batch, cudnn_search, cuda_graph,
         no_skip_background, recursive, overwrite, threads, quiet):
    """Segment PNG, JPEG and TIFF scans (files or folders) into background, bone, fat and other tissue.

    Images with more pixels than the limit (default {limit:,}; ${env}) are refused.
    """
    from bonemarrow.runtime.batch.local import run_batch
    from bonemarrow.runtime.contract import ModelContractError
    from bonemarrow.runtime.model import default_model_path, open_model
    from bonemarrow.runtime.providers import CUDA, CudaSettings, InstallError, ProviderError
    from bonemarrow.runtime.tiling import TilingConfig

    try:
        max_pixels = max_pixels_default()
    except ValueError:
        raise click.UsageError(f"${MAX_PIXELS_ENV} must be an integer") from None
    items, missing = find_images(list(inputs), recursive=recursive)
    if not items and not missing:
        fail("no PNG, JPEG or TIFF images found in " + ", ".join(map(str, inputs)), EXIT_FAILED)
    try:
        cuda = CudaSettings(cudnn_conv_algo_search=cudnn_search.upper(), cuda_graph=cuda_graph)
        loaded = open_model(model if model is not None else default_model_path(), provider, threads, cuda=cuda)
        if fixed_batch is None:
            fixed_batch = loaded.provider == CUDA
        config = TilingConfig(tile=tile, overlap=overlap, batch_size=batch, skip_background=not no_skip_background,
                              fixed_batch=fixed_batch)
    except (FileNotFoundError, ModelContractError, ProviderError, InstallError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        click.echo(loaded.choice.describe(), err=True)
    report = run_batch(loaded, config, items, outdir, overwrite=overwrite, max_pixels=max_pixels,
                       log=(lambda line: None) if quiet else _err, error=_err, show_progress=not quiet,
                       missing=missing)
    if not quiet and report.images:
        from bonemarrow.runtime.batch.summary import fractions_table

        click.echo(fractions_table(list(report.images.values())))
    if not quiet:
        _err(f"done: {report.processed} segmented, {report.skipped} already finished, "
             f"{len(report.failures)} failed -> {outdir / 'results.csv'}")
    sys.exit(report.exit_code)


def _err(line: str) -> None:
    click.echo(line, err=True)


main.help = main.help.replace("{limit:,}", f"{DEFAULT_MAX_PIXELS:,}").replace("{env}", MAX_PIXELS_ENV)

if __name__ == "__main__":
    main()
