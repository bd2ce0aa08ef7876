"""bm-bench: one run that compares PyTorch, onnxruntime and the original inference on the same weights.

    bm-bench --quick                                   # a few minutes: smoke-sized figures
    bm-bench --checkpoint weights/bonemarrow_compact.pt --model models_onnx/bonemarrow_compact.onnx

Writes OUT/MACHINE.json, OUT/MACHINE.md and OUT/MACHINE_*.png (OUT defaults to
benchmarks/results, where the published runs live). A --quick run's figures are
smoke-sized and must never replace a published one: it writes
OUT/MACHINE_quick.json, .md and _*.png, and OUT defaults to bench_quick/.
Exit codes: 0 all sections ran, 1 a section failed (the others still report),
2 usage error, unusable checkpoint or model, or a missing extra.
"""
from __future__ import annotations

import datetime as _dt
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_FAILED, EXIT_OK, error, fail, first_line,
                                           quiet_option, require, threads_option)
from bonemarrow.runtime.contract import PRECISIONS
from bonemarrow.training.models.registry import PRESETS

SECTIONS = ("tile", "whole", "parity", "scaling")
#: Whole-image devices (PyTorch's names).
DEVICES = ("cpu", "cuda")
DEFAULT_OUT = Path("benchmarks") / "results"
#: Where --quick runs go unless --out says otherwise: not the tracked folder of published runs.
QUICK_OUT = Path("bench_quick")
QUICK_SUFFIX = "_quick"


@dataclass
class BenchConfig:
    """Everything a run needs; the CLI fills it from options, tests build small ones directly."""

    out: Path | None = None  # None: DEFAULT_OUT, or QUICK_OUT for a quick run
    sections: tuple[str, ...] = SECTIONS
    checkpoint: Path | None = None
    models: tuple[Path, ...] = ()
    presets: tuple[str, ...] = tuple(PRESETS)
    overrides: dict = field(default_factory=dict)
    precisions: tuple[str, ...] = tuple(PRECISIONS)
    batches: tuple[int, ...] = (1, 2, 4, 8)
    tile: int | None = 256  # per-tile section (GFLOP/s barely depends on it); None = the model's tile
    whole_size: tuple[int, int] = (6000, 2000)
    whole_precisions: tuple[str, ...] = ("fp32", "int8")
    scaling_mp: tuple[float, ...] = (1, 4, 16, 64)
    repeats: int = 3
    whole_repeats: int | None = None  # None = repeats
    scaling_repeats: int | None = None  # None = repeats
    threads: int | None = None
    devices: tuple[str, ...] | None = None  # whole-image devices; None = cpu, plus cuda when PyTorch sees one
    tile_devices: tuple[str, ...] = DEVICES  # per-tile rows: cpu, cuda or both (cuda rows say why when absent)
    machine: str | None = None
    quick: bool = False
    quiet: bool = False
    matmul_size: int = 2048


def quick_config(**changes) -> BenchConfig:
    """--quick: the compact preset only, small tiles, images and repeats."""
    base = dict(presets=("compact",), batches=(1, 2), tile=128, whole_size=(1200, 400), scaling_mp=(0.1, 0.4),
                precisions=("fp32", "int8"), whole_precisions=("fp32",), repeats=1, quick=True, matmul_size=1024)
    return BenchConfig(**{**base, **changes})


def output_location(config: BenchConfig, machine: str) -> tuple[Path, str]:
    """(folder, file stem) of a run's report: a quick run never takes a published run's name."""
    out = Path(config.out) if config.out is not None else (QUICK_OUT if config.quick else DEFAULT_OUT)
    return out, f"{machine}{QUICK_SUFFIX}" if config.quick else machine


def resolve_devices(devices: tuple[str, ...] | None) -> tuple[str, ...]:
    """Devices for whole images: as asked, or cpu plus cuda when PyTorch really sees a GPU."""
    import torch

    has_cuda = torch.cuda.is_available()
    if devices is None:
        return ("cpu", "cuda") if has_cuda else ("cpu",)
    bad = [d for d in devices if d not in DEVICES]
    if bad or not devices:
        raise ValueError(f"devices must come from {','.join(DEVICES)}, got {','.join(devices) or 'none'}")
    if "cuda" in devices and not has_cuda:
        raise ValueError("--devices cuda: PyTorch sees no CUDA device on this machine")
    return tuple(dict.fromkeys(devices))


def _parse_list(text: str, kind=str) -> tuple:
    return tuple(kind(v.strip()) for v in text.split(",") if v.strip())


def run_bench(config: BenchConfig, argv: list[str] | None = None) -> tuple[dict, list[Path]]:
    """Run the sections asked for; return (report, files written). Section failures are recorded, not raised."""
    from tqdm import tqdm

    from bonemarrow.benchmarks import machine as machine_mod
    from bonemarrow.benchmarks.models import load_models
    from bonemarrow.benchmarks.report import render_markdown, write_charts, write_json
    from bonemarrow.runtime.atomic import write_text_atomic

    import torch

    threads = config.threads or machine_mod.cpu_count()
    torch.set_num_threads(threads)
    devices = resolve_devices(config.devices)
    info = machine_mod.machine_info(config.machine)
    name = info["name"]
    bar = tqdm(total=None, disable=config.quiet, unit="step", file=sys.stderr)

    def progress(text: str) -> None:
        bar.set_description_str(text[:70])
        bar.update(1)

    report: dict = {"format_version": 1, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "command": argv, "quick": config.quick, "machine": info, "settings": {
                        "sections": list(config.sections), "repeats": config.repeats,
                        "whole_repeats": config.whole_repeats or config.repeats,
                        "scaling_repeats": config.scaling_repeats or config.repeats, "threads": threads,
                        "batches": list(config.batches), "tile": config.tile, "presets": list(config.presets),
                        "precisions": list(config.precisions), "whole_size": list(config.whole_size),
                        "whole_precisions": list(config.whole_precisions), "scaling_mp": list(config.scaling_mp),
                        "devices": list(devices), "tile_devices": list(config.tile_devices)},
                    "models": {}, "sections": {}, "errors": {}}
    progress("matmul peak")
    report["matmul_peak"] = machine_mod.matmul_peak(config.matmul_size)
    report["cuda_matmul_peaks"] = machine_mod.cuda_matmul_peaks(2048 if config.quick else 8192)
    with tempfile.TemporaryDirectory(prefix="bm-bench-") as scratch:
        work = Path(scratch)
        presets = list(config.presets)
        if config.checkpoint is not None:  # the checkpoint decides its own preset; it goes first
            from bonemarrow.training.checkpoint import read_checkpoint

            ckpt_preset = read_checkpoint(config.checkpoint)["config"].get("preset", presets[0])
            presets = [ckpt_preset] + [p for p in presets if p != ckpt_preset]
        model_sets = {}
        for index, preset in enumerate(presets):
            progress(f"models: {preset}")
            main = index == 0
            model_sets[preset] = load_models(
                preset, checkpoint=config.checkpoint if main else None, onnx_paths=list(config.models) if main else [],
                precisions=list(config.precisions), workdir=work, overrides=config.overrides,
                quick=config.quick, quiet=True)
            report["models"][preset] = model_sets[preset].describe()
        primary = model_sets[presets[0]]
        weights = config.checkpoint
        if weights is None:
            from bonemarrow.training.checkpoint import save_checkpoint

            weights = work / f"{primary.preset}-untrained.pt"
            save_checkpoint(weights, primary.torch_model, {"tile": primary.tile})

        def section(key: str, fn) -> None:
            if key not in config.sections:
                return
            try:
                report["sections"][key] = fn()
            except Exception as error:  # one section failing must not lose the others' figures
                report["errors"][key] = first_line(error, with_type=True)
                bar.write(f"error: section {key}: {report['errors'][key]}", file=sys.stderr)

        from bonemarrow.benchmarks.parity_bench import bench_parity
        from bonemarrow.benchmarks.scaling_bench import bench_scaling
        from bonemarrow.benchmarks.tile_bench import bench_tiles
        from bonemarrow.benchmarks.whole_bench import bench_whole, write_scan

        peak = report["matmul_peak"]["median"]
        section("tile", lambda: {p: bench_tiles(m, batches=list(config.batches), repeats=config.repeats,
                                                threads=threads, peak_gflops=peak, tile=config.tile,
                                                progress=progress, cuda_peaks=report["cuda_matmul_peaks"],
                                                devices=config.tile_devices)
                                    for p, m in model_sets.items()})
        width, height = config.whole_size
        section("whole", lambda: bench_whole(
            checkpoint=Path(weights), onnx=primary.onnx, trained=primary.trained, width=width, height=height,
            repeats=config.whole_repeats or config.repeats, threads=threads, workdir=work,
            precisions=list(config.whole_precisions), progress=progress, devices=devices, tile=primary.tile))

        def parity():
            _, rgb, _ = write_scan(work, width, height)
            return {primary.preset: bench_parity(primary, rgb, threads=threads, progress=progress)}

        section("parity", parity)
        def need_fp32() -> Path:
            if "fp32" not in primary.onnx:
                raise RuntimeError(f"no fp32 ONNX model: {primary.missing.get('fp32', 'none given or exported')}")
            return primary.onnx["fp32"]

        section("scaling", lambda: bench_scaling(
            model=need_fp32(), sizes_mp=list(config.scaling_mp), repeats=config.scaling_repeats or config.repeats,
            threads=threads, workdir=work, progress=progress))
    bar.close()
    out, stem = output_location(config, name)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_json(report, out / f"{stem}.json")]
    md = out / f"{stem}.md"
    write_text_atomic(md, render_markdown(report))
    files.append(md)
    files += write_charts(report, out, stem)
    return report, files


HELP = """Benchmark PyTorch vs onnxruntime, the original inference vs bm-run, parity and scaling.

\b
Writes OUT/MACHINE.json, .md and _*.png (OUT: benchmarks/results). --quick runs
write OUT/MACHINE_quick.* instead (OUT: bench_quick/), never a published run's files.
Exit codes: 0 every section ran; 1 a section failed (the others still report);
2 usage error, unusable checkpoint or model, or a missing extra.
"""


def require_bench_extras() -> None:
    """One line naming the extra to install, before anything imports torch, onnx or matplotlib."""
    for module in ("torch", "torchvision", "onnx", "onnxsim"):
        require(module, "export", "bm-bench")
    require("onnxruntime", "cpu", "bm-bench")
    require("matplotlib", "eval", "bm-bench's charts")


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.option("--quick", is_flag=True,
              help="Smoke-sized run (compact only, small tiles/images, 1 repeat): minutes. Writes MACHINE_quick.*.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PyTorch checkpoint (weights/bonemarrow_compact.pt). Without one: untrained models.")
@click.option("--model", "models", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"ONNX model(s) of the same weights ({', '.join(PRECISIONS)}); missing precisions are exported.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Report folder [{DEFAULT_OUT}; --quick {QUICK_OUT}].")
@click.option("--sections", default=",".join(SECTIONS), show_default=True, help="Comma list of sections to run.")
@click.option("--repeats", type=click.IntRange(1), default=None, help="Timed runs per figure [3; --quick 1].")
@click.option("--whole-repeats", type=click.IntRange(1), default=None, help="Runs per whole-image row [--repeats].")
@click.option("--scaling-repeats", type=click.IntRange(1), default=None, help="Runs per scaling size [--repeats].")
@click.option("--presets", default=None,
              help=f"Presets for the per-tile section, comma list of {','.join(PRESETS)} [all; --quick compact].")
@click.option("--batches", default=None, help="Batch sizes per tile [1,2,4,8; --quick 1,2].")
@click.option("--tile", type=click.IntRange(0), default=None,
              help="Per-tile section tile size [256; --quick 128; 0 = the model's own]. Whole images use the model's.")
@click.option("--whole-size", default=None, help="Whole-image scan WxH [6000x2000; --quick 1200x400].")
@click.option("--scaling-mp", default=None, help="Scaling sizes in megapixels [1,4,16,64; --quick 0.1,0.4].")
@click.option("--precisions", default=None,
              help=f"ONNX precisions to compare, comma list of {','.join(PRECISIONS)} [all; --quick fp32,int8].")
@threads_option(help="CPU threads for every backend [default: all cores].")
@click.option("--devices", default=None,
              help=f"Whole-image devices, comma list of {','.join(DEVICES)} [cpu, plus cuda when PyTorch sees a GPU].")
@click.option("--tile-devices", default=None,
              help=f"Per-tile rows for these devices, comma list of {','.join(DEVICES)} [both].")
@click.option("--whole-precisions", default=None,
              help="ONNX precisions bm-run runs on whole images, comma list [fp32,int8; --quick fp32].")
@click.option("--machine", default=None, help="Name results after this (default: CPU model + core count).")
@click.option("--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Model setting for untrained presets (e.g. unet_features=4); for tests and exploration.")
@quiet_option(help="No progress bar.")
def main(quick, checkpoint, models, out, sections, repeats, whole_repeats, scaling_repeats, presets, batches, tile, whole_size,
         scaling_mp, precisions, threads, devices, tile_devices, whole_precisions, machine, overrides, quiet):
    require_bench_extras()
    from bonemarrow.benchmarks.models import parse_overrides
    from bonemarrow.runtime.contract import ModelContractError
    from bonemarrow.training.checkpoint import CheckpointError, read_checkpoint
    from bonemarrow.training.models.registry import resolve_config

    try:
        wanted = _parse_list(sections)
        bad = [s for s in wanted if s not in SECTIONS]
        if bad or not wanted:
            raise ValueError(f"unknown section(s) {bad}; choose from {','.join(SECTIONS)}")
        changes: dict = {"out": out, "sections": wanted, "checkpoint": checkpoint, "models": tuple(models),
                         "threads": threads, "machine": machine, "quiet": quiet,
                         "overrides": parse_overrides(overrides), "whole_repeats": whole_repeats,
                         "scaling_repeats": scaling_repeats}
        if repeats:
            changes["repeats"] = repeats
        if presets:
            changes["presets"] = _parse_list(presets)
            unknown = [p for p in changes["presets"] if p not in PRESETS]
            if unknown or not changes["presets"]:
                raise ValueError(f"unknown preset(s) {unknown}; choose from {','.join(PRESETS)}")
        for preset in changes.get("presets", ("compact",) if quick else BenchConfig.presets):
            resolve_config(preset, **changes["overrides"])  # bounded before any model is built
        if batches:
            changes["batches"] = _parse_list(batches, int)
        if tile is not None:
            if 0 < tile < 32:
                raise ValueError(f"--tile must be 0 (the model's) or at least 32, got {tile}")
            changes["tile"] = tile or None
        if whole_size:
            w, _, h = whole_size.lower().partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) >= 16 and int(h) >= 16):
                raise ValueError(f"--whole-size must be WIDTHxHEIGHT (16 px minimum), got {whole_size!r}")
            changes["whole_size"] = (int(w), int(h))
        if scaling_mp:
            changes["scaling_mp"] = _parse_list(scaling_mp, float)
        if devices is not None:
            changes["devices"] = resolve_devices(_parse_list(devices))
        if tile_devices is not None:
            changes["tile_devices"] = tuple(dict.fromkeys(_parse_list(tile_devices)))
            if not changes["tile_devices"] or not set(changes["tile_devices"]) <= set(DEVICES):
                raise ValueError(f"--tile-devices must come from {','.join(DEVICES)}, got {tile_devices!r}")
        if whole_precisions is not None:
            changes["whole_precisions"] = _parse_list(whole_precisions)
            if not changes["whole_precisions"] or not set(changes["whole_precisions"]) <= set(PRECISIONS):
                raise ValueError(f"--whole-precisions must come from {','.join(PRECISIONS)}, got {whole_precisions!r}")
        if precisions:
            changes["precisions"] = _parse_list(precisions)
            if not set(changes["precisions"]) <= set(PRECISIONS) or "fp32" not in changes["precisions"]:
                raise ValueError(f"precisions must include fp32 and come from {','.join(PRECISIONS)}")
        if models and not checkpoint:
            raise ValueError("--model needs --checkpoint: the PyTorch side must have the same weights")
        if checkpoint and changes["overrides"]:
            raise ValueError("--override only applies to untrained presets, not to --checkpoint")
    except ValueError as problem:
        raise click.UsageError(first_line(problem)) from None
    config = quick_config(**changes) if quick else BenchConfig(**changes)
    try:
        if checkpoint is not None:
            read_checkpoint(checkpoint)  # an unusable checkpoint is refused before minutes of setup
        report, files = run_bench(config, argv=sys.argv[1:])
    except (CheckpointError, ModelContractError) as problem:
        fail(first_line(problem))
    for path in files:
        click.echo(str(path))
    for key, text in report["errors"].items():
        error(f"section {key}: {text}")
    sys.exit(EXIT_FAILED if report["errors"] else EXIT_OK)


if __name__ == "__main__":
    main()
