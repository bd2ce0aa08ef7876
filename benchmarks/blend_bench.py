"""The tiler's host time per tile, before and after a change, in one run (a benchmark, not a test).

    python -m bonemarrow.benchmarks.blend_bench                      # 6000 x 2000, tile 512, batch 4
    python -m bonemarrow.benchmarks.blend_bench --before 3a62095 --repeats 7 --out benchmarks/results

"Host time" is everything run_tiled does except the model: reading tiles into the
batch, Gaussian weighting and accumulation, normalisation, argmax and the sinks
(a label map and class counts, as bm-run has). The model is replaced by a predict
that returns precomputed probabilities at no cost, so what is timed is exactly
what the CPU must do per tile to keep a GPU busy. The "before" tiler is the
runtime/tiling package of git revision --before, loaded from the repository under
another module name; "after" is the installed one. Both run on the same image,
interleaved, so machine-load drift hits both alike.

Writes OUT/MACHINE_blend.json and .md and prints the ratio.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bonemarrow.benchmarks.machine import cpu_count, cpu_model, machine_name
from bonemarrow.benchmarks.stats import summarize

#: main before the host-time work of issue 17 (the tiler as the H200 figures measured it).
DEFAULT_BEFORE = "3a62095"
TILING_MODULES = ("__init__", "accumulate", "config", "driver", "grid", "sinks", "sources")
REPO = Path(__file__).resolve().parent.parent


def load_tiling_from_git(ref: str, root: Path, name: str = "bm_tiling_before"):
    """runtime/tiling at git revision `ref`, importable as `name` (its absolute imports rewritten)."""
    package = root / name
    package.mkdir(parents=True, exist_ok=True)
    for module in TILING_MODULES:
        try:
            text = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:runtime/tiling/{module}.py"],
                                  check=True, capture_output=True, text=True).stdout
        except subprocess.CalledProcessError as error:
            raise SystemExit(f"blend_bench: cannot read runtime/tiling/{module}.py at {ref}: "
                             f"{error.stderr.strip() or error}") from None
        (package / f"{module}.py").write_text(text.replace("bonemarrow.runtime.tiling", name))
    sys.path.insert(0, str(root))
    return importlib.import_module(name)


def fake_model(batch: int, tile: int, classes: int = 4, seed: int = 0):
    """predict(batch) -> precomputed softmax probabilities (no model cost), shape-checked like a model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, classes, tile, tile)).astype(np.float32)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)

    def predict(images: np.ndarray) -> np.ndarray:
        return probs[:images.shape[0]]

    return predict


def time_tiler(tiling, image: np.ndarray, predict, *, tile: int, batch: int, overlap: float,
               want_probs: bool) -> tuple[float, int]:
    """(seconds, tiles) of one run_tiled over `image` with bm-run's sinks (labels and class counts)."""
    config = tiling.TilingConfig(tile=tile, batch_size=batch, overlap=overlap, skip_background=False)
    source = tiling.ArraySource(image)
    sinks = [tiling.ArraySink(*image.shape[:2], keep_probs=want_probs), tiling.ClassCounter()]
    start = time.perf_counter()
    result = tiling.run_tiled(source, predict, sinks, config, divisor=32, want_probs=want_probs)
    return time.perf_counter() - start, result.tiles_total


def profile_tiler(tiling, image: np.ndarray, predict, *, tile: int, batch: int, overlap: float,
                  top: int = 8) -> list[dict]:
    """Where one labels-only run spends its time: cProfile's functions by own time, in ms per tile."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    _, tiles = time_tiler(tiling, image, predict, tile=tile, batch=batch, overlap=overlap, want_probs=False)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.items():
        where = name if filename == "~" else f"{Path(filename).name}:{name}"
        rows.append({"function": where, "calls": calls, "own_ms_per_tile": own * 1000.0 / tiles,
                     "cumulative_ms_per_tile": cumulative * 1000.0 / tiles})
    rows.sort(key=lambda row: row["own_ms_per_tile"], reverse=True)
    return rows[:top]


def run(args) -> dict:
    import bonemarrow.runtime.tiling as after

    image = np.random.default_rng(1).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    predict = fake_model(args.batch, args.tile)
    with tempfile.TemporaryDirectory() as scratch:
        before = load_tiling_from_git(args.before, Path(scratch))
        variants = {"before": before, "after": after}
        rows = {}
        for want_probs in (False, True):
            mode = "labels + probabilities" if want_probs else "labels"
            times: dict[str, list[float]] = {name: [] for name in variants}
            tiles = 0
            for name, tiling in variants.items():  # warm-up: first-touch allocations, imports
                time_tiler(tiling, image, predict, tile=args.tile, batch=args.batch, overlap=args.overlap,
                           want_probs=want_probs)
            for _ in range(args.repeats):
                for name, tiling in variants.items():
                    seconds, tiles = time_tiler(tiling, image, predict, tile=args.tile, batch=args.batch,
                                                overlap=args.overlap, want_probs=want_probs)
                    times[name].append(seconds * 1000.0 / tiles)
            summary = {name: summarize(values, "ms/tile") for name, values in times.items()}
            ratios = [b / a for b, a in zip(times["before"], times["after"])]
            rows[mode] = {**summary, "tiles": tiles, "ratio": summarize(ratios, "x")}
        profiles = {name: profile_tiler(tiling, image, predict, tile=args.tile, batch=args.batch,
                                        overlap=args.overlap) for name, tiling in variants.items()}
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": ["python", "-m", "bonemarrow.benchmarks.blend_bench", *sys.argv[1:]],
            "machine": {"name": machine_name(args.machine), "cpu_model": cpu_model(), "cpus": cpu_count()},
            "before": args.before, "after": _git_head(),
            "image": [args.height, args.width], "tile": args.tile, "batch": args.batch, "overlap": args.overlap,
            "repeats": args.repeats, "rows": rows, "profiles": profiles}


def _git_head() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (uncommitted changes)" if dirty else "")


def _fmt(summary: dict) -> str:
    return f"{summary['median']:.3g} [{summary['q1']:.3g}-{summary['q3']:.3g}]"


def render(report: dict) -> str:
    h, w = report["image"]
    lines = [f"# Tiler host time per tile on {report['machine']['name']}", "",
             f"{report['machine']['cpu_model']}, {report['machine']['cpus']} CPUs. Run {report['created']}: "
             f"`{' '.join(report['command'])}`.", "",
             f"{w} x {h} random RGB image, tile {report['tile']}, batch {report['batch']}, overlap "
             f"{report['overlap']}, every tile run (no background skipping), sinks: a label map and class counts. "
             "The model is a predict that returns precomputed probabilities at no cost, so the figures are the "
             "tiler's own host work (tile reading, Gaussian weighting and accumulation, normalisation, argmax, "
             f"sinks). Median [q1-q3] of {report['repeats']} interleaved runs after a warm-up.", "",
             f"before = runtime/tiling at `{report['before']}`, after = `{report['after']}`.", "",
             "| output | tiles | before ms/tile | after ms/tile | before / after |", "|---|---|---|---|---|"]
    for mode, row in report["rows"].items():
        lines.append(f"| {mode} | {row['tiles']} | {_fmt(row['before'])} | {_fmt(row['after'])} | "
                     f"{_fmt(row['ratio'])}x |")
    for name, profile in report.get("profiles", {}).items():
        lines += ["", f"Where the time goes, {name} (labels only; one run under cProfile, which adds its own "
                      "overhead; own time per function, ms per tile):", "",
                  "| function | calls | own ms/tile | cumulative ms/tile |", "|---|---|---|---|"]
        for row in profile:
            lines.append(f"| `{row['function']}` | {row['calls']} | {row['own_ms_per_tile']:.3g} | "
                         f"{row['cumulative_ms_per_tile']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bonemarrow.benchmarks.blend_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' tiler")
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--machine", default=None, help="name the results are filed under")
    parser.add_argument("--out", type=Path, default=None, help="folder for MACHINE_blend.json/.md (none: print only)")
    args = parser.parse_args(argv)
    sys.argv = ["blend_bench", *(argv if argv is not None else sys.argv[1:])]
    report = run(args)
    text = render(report)
    print(text)
    if args.out is not None:
        from bonemarrow.runtime.atomic import write_text_atomic
        from bonemarrow.runtime.json_io import write_json_atomic

        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"{report['machine']['name']}_blend"
        write_json_atomic(stem.with_suffix(".json"), report)
        write_text_atomic(stem.with_suffix(".md"), text)
        print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
