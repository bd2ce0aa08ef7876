"""onnxruntime's CUDA provider, measured the ways bm-run can run it, in one run (the GPU check of issue 17).

    python -m bonemarrow.benchmarks.ort_cuda --model models_onnx/bonemarrow_compact.onnx \\
        --model /tmp/compact_fp16.onnx --machine nvidia-h200 --out benchmarks/results
    python -m bonemarrow.benchmarks.ort_cuda --provider cpu --width 1200 --height 400 --repeats 1   # rehearsal

1. Per tile, per model and batch size: plain session.run against IO binding
   (fixed buffers per shape), cuDNN's HEURISTIC against EXHAUSTIVE search, and
   IO binding with a CUDA graph; the first call of each shape is reported apart
   (that is where an algorithm search stalls), then the median of `repeats` calls.
2. A whole synthetic scan (6000 x 2000 by default), per model, as bm-run runs it
   (IO binding, fixed-shape batches, default settings, warmed up): the in-memory
   segmentation, its model seconds and host seconds, the batch shapes the model saw,
   the bm-run pipeline's wall time (decode, segment, write the label PNG and overlay),
   and the share of pixels whose labels agree with the CPU provider's fp32 labels.

Writes OUT/MACHINE_ort_cuda.json and .md (with --out) and prints the table.
Needs the training extra for the synthetic scan (bonemarrow.training.synth).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bonemarrow.benchmarks.machine import cpu_count, cpu_model, machine_name
from bonemarrow.benchmarks.stats import fmt, summarize

VARIANTS = {  # name -> (io_binding, CudaSettings fields)
    "session.run": (False, {}),
    "io binding": (True, {}),
    "io binding, exhaustive": (True, {"cudnn_conv_algo_search": "EXHAUSTIVE"}),
    "io binding, cuda graph": (True, {"cuda_graph": True}),
}
CPU_VARIANTS = ("session.run", "io binding")


def tiles(batch: int, tile: int, seed: int = 0) -> np.ndarray:
    """Pink-and-purple noise tiles, uint8 [batch, 3, tile, tile]."""
    rng = np.random.default_rng(seed)
    base = np.array([200, 120, 170], np.uint8)[None, :, None, None]
    noise = rng.integers(0, 50, (batch, 3, tile, tile), dtype=np.uint8)
    return (base - noise).astype(np.uint8)


def open_variant(path: Path, provider: str, variant: str, threads: int | None):
    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.providers import CudaSettings

    io_binding, fields = VARIANTS[variant]
    return open_model(path, provider, threads, cuda=CudaSettings(**fields), io_binding=io_binding)


def bench_tiles(paths: list[Path], provider: str, batches: list[int], repeats: int, threads: int | None,
                tile: int | None, say) -> list[dict]:
    rows = []
    variants = list(VARIANTS) if provider != "cpu" else list(CPU_VARIANTS)
    for path in paths:
        for variant in variants:
            try:
                model = open_variant(path, provider, variant, threads)
            except Exception as error:  # noqa: BLE001 - a row that says why
                rows.append({"model": path.name, "variant": variant, "status": "not run", "reason": str(error)})
                continue
            side = tile or model.info.tile
            for batch in batches:
                say(f"tiles: {path.name} {variant} batch {batch}")
                images = tiles(batch, side, seed=batch)
                start = time.perf_counter()
                model.predict_view(images)
                first = time.perf_counter() - start
                model.predict_view(images)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model.predict_view(images)
                    times.append((time.perf_counter() - start) * 1000.0 / batch)
                rows.append({"model": path.name, "precision": model.info.precision, "variant": variant,
                             "provider": model.provider, "describe": model.choice.describe(), "batch": batch,
                             "tile": side, "first_call_s": first, "ms_per_tile": summarize(times, "ms"),
                             "status": "ok"})
            del model
    return rows


def bench_whole(paths: list[Path], provider: str, width: int, height: int, repeats: int, threads: int | None,
                workdir: Path, say) -> dict:
    from bonemarrow.benchmarks.whole_bench import write_scan
    from bonemarrow.runtime.batch.local import run_batch
    from bonemarrow.runtime.io.readers import read_rgb
    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.providers import CUDA
    from bonemarrow.runtime.segmenter import Segmenter
    from bonemarrow.runtime.tiling import ArraySink, ArraySource, ClassCounter, TilingConfig, run_tiled

    say("whole: synthetic scan")
    png, rgb, _ = write_scan(workdir, width, height)
    say("whole: CPU fp32 reference labels")
    reference_model = open_model(paths[0], "cpu", threads)
    reference = Segmenter(reference_model).segment(rgb).labels
    del reference_model
    rows = {}
    for path in paths:
        try:
            model = open_model(path, provider, threads)
        except Exception as error:  # noqa: BLE001 - a row that says why
            rows[path.name] = {"status": "not run", "reason": str(error)}
            continue
        config = TilingConfig(fixed_batch=model.provider == CUDA).resolved(model.info)
        warm = np.full((config.batch_size, 3, config.tile, config.tile), 200, np.uint8)
        model.predict_view(warm)
        model.predict_view(warm)
        shapes: set[tuple] = set()

        def predict(batch, model=model):
            shapes.add(batch.shape)
            return model.predict_view(batch)

        segment_s, model_s, labels, result = [], [], None, None
        for index in range(repeats):
            say(f"whole: {path.name} segment {index + 1}/{repeats}")
            sink = ArraySink(*rgb.shape[:2])
            before = model.model_seconds
            start = time.perf_counter()
            result = run_tiled(ArraySource(rgb), predict, [sink, ClassCounter()], config, divisor=model.info.divisor)
            segment_s.append(time.perf_counter() - start)
            model_s.append(model.model_seconds - before)
            labels = sink.labels
        host_ms = [(s - m) * 1000.0 / max(1, result.tiles_total - result.tiles_skipped)
                   for s, m in zip(segment_s, model_s)]
        walls = []
        for index in range(repeats):
            say(f"whole: {path.name} bm-run pipeline {index + 1}/{repeats}")
            out = workdir / f"bmrun-{path.stem}-{index}"
            start = time.perf_counter()
            report = run_batch(model, config, [(png, "scan")], out, overwrite=True, show_progress=False,
                               log=lambda _line: None, error=lambda line: print(line, file=sys.stderr))
            walls.append(time.perf_counter() - start)
            if report.failures:
                raise RuntimeError(f"bm-run failed: {report.failures[0]['error']}")
        start = time.perf_counter()
        read_rgb(png)
        decode = time.perf_counter() - start
        rows[path.name] = {
            "status": "ok", "precision": model.info.precision, "provider": model.provider, "describe": model.choice.describe(),
            "io_binding": model.io_binding, "fixed_batch": config.fixed_batch, "batch": config.batch_size,
            "tile": config.tile, "tiles_total": result.tiles_total, "tiles_skipped": result.tiles_skipped,
            "batch_shapes": sorted(list(s) for s in shapes),
            "segment_s": summarize(segment_s, "s"), "model_s": summarize(model_s, "s"),
            "host_ms_per_tile": summarize(host_ms, "ms"), "bmrun_wall_s": summarize(walls, "s"),
            "decode_s": decode,
            "agreement_with_cpu_fp32": float((labels == reference).mean()),
        }
        del model
    return {"width": width, "height": height, "png": png.name, "rows": rows}


def render(report: dict) -> str:
    lines = [f"# onnxruntime {report['provider']} on {report['machine']['name']}", "",
             f"{report['machine']['cpu_model']}, {report['machine']['cpus']} CPUs; onnxruntime "
             f"{report['versions']['onnxruntime']}; run {report['created']}: `{' '.join(report['command'])}`.", "",
             "## Per tile", "",
             "ms / tile: median [q1-q3] (or [min-max] under 4) of the calls after the first two of each shape; "
             "first call: the first call of that shape (cuDNN's algorithm search, graph capture).", "",
             "| model | precision | variant | batch | ms / tile | first call s | session |", "|---|---|---|---|---|---|---|"]
    for row in report["tiles"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | - | {row['variant']} | - | not run: {row['reason']} | - | - |")
            continue
        lines.append(f"| {row['model']} | {row['precision']} | {row['variant']} | {row['batch']} | "
                     f"{fmt(row['ms_per_tile'])} | {row['first_call_s']:.3g} | {row['describe']} |")
    whole = report.get("whole")
    if whole:
        lines += ["", f"## Whole scan: {whole['width']} x {whole['height']} synthetic biopsy, as bm-run runs it", "",
                  "segment: tiles read, model, blending and argmax in memory; host ms/tile: (segment - model) per "
                  "tile run; bm-run wall: the batch pipeline on the PNG (decode, segment, label PNG and overlay "
                  "written); agreement: pixels whose labels equal the CPU provider's fp32 labels.", "",
                  "| model | precision | session | batch shapes | tiles run | segment s | model s | host ms/tile | "
                  "bm-run wall s | decode s | agreement |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, row in whole["rows"].items():
            if row["status"] != "ok":
                lines.append(f"| {name} | not run: {row['reason']} |" + " - |" * 9)
                continue
            shapes = ", ".join("x".join(map(str, s)) for s in row["batch_shapes"])
            lines.append(f"| {name} | {row['precision']} | {row['describe']} | {shapes} | "
                         f"{row['tiles_total'] - row['tiles_skipped']} | {fmt(row['segment_s'])} | "
                         f"{fmt(row['model_s'])} | {fmt(row['host_ms_per_tile'])} | {fmt(row['bmrun_wall_s'])} | "
                         f"{row['decode_s']:.3g} | {100 * row['agreement_with_cpu_fp32']:.4f} % |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m bonemarrow.benchmarks.ort_cuda", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True,
                        help="ONNX model (repeatable; the first is the CPU reference for agreement)")
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--batches", default="4,8,16")
    parser.add_argument("--tile", type=int, default=None, help="per-tile section's tile (default: the model's)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--whole-repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--no-whole", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--machine", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import onnxruntime

    def say(text: str) -> None:
        print(f"[ort_cuda] {text}", file=sys.stderr, flush=True)

    report = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": ["python", "-m", "bonemarrow.benchmarks.ort_cuda", *argv], "provider": args.provider,
              "machine": {"name": machine_name(args.machine), "cpu_model": cpu_model(), "cpus": cpu_count()},
              "versions": {"onnxruntime": onnxruntime.__version__,
                           "providers": onnxruntime.get_available_providers()}}
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    report["tiles"] = bench_tiles(args.model, args.provider, batches, args.repeats, args.threads, args.tile, say)
    if not args.no_whole:
        with tempfile.TemporaryDirectory(prefix="ort-cuda-") as scratch:
            report["whole"] = bench_whole(args.model, args.provider, args.width, args.height, args.whole_repeats,
                                          args.threads, Path(scratch), say)
    text = render(report)
    print(text)
    if args.out is not None:
        from bonemarrow.runtime.atomic import write_text_atomic
        from bonemarrow.runtime.json_io import write_json_atomic

        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"{report['machine']['name']}_ort_{args.provider}"
        write_json_atomic(stem.with_suffix(".json"), report)
        write_text_atomic(stem.with_suffix(".md"), text)
        print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
