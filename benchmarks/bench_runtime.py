"""Runtime benchmark (not a test): tiled onnxruntime inference on a seed-scale scan.

A procedural stand-in for a biopsy scan (about 6000 x 2000 pixels, about half of it
glass) is segmented by a small convolutional ONNX model (a few 3x3 convolutions,
built with onnx.helper until the trained model lands). Each configuration runs in
a fresh subprocess so peak RSS is its own. Reports megapixels per second, the share
of wall time inside the model, peak RSS, and tiles skipped.

    python -m bonemarrow.benchmarks.bench_runtime            # writes benchmarks/results/bench_runtime.json
    python -m bonemarrow.benchmarks.bench_runtime --width 3000 --height 1000 --repeats 1   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "bench_runtime.json"
CONFIGS = {
    "skip_background": dict(skip_background=True, banded=True),
    "no_skip": dict(skip_background=False, banded=True),
    "skip_background_unbanded": dict(skip_background=True, banded=False),
}


def conv_model(path: Path, channels: int = 16, layers: int = 4, tile: int = 512, divisor: int = 32) -> Path:
    """A few 3x3 convolutions + softmax honouring the model contract (uint8 in, probs out, metadata)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Cast", ["image"], ["x0"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x0", "scale"], ["h0"])]
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")]
    previous, c_in = "h0", 3
    for i in range(layers):
        c_out = 4 if i == layers - 1 else channels
        weight = rng.normal(0, np.sqrt(2 / (9 * c_in)), (c_out, c_in, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{i}"), numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"h{i + 1}"]))
            previous = f"h{i + 1}"
        else:
            previous = f"c{i}"
        c_in = c_out
    nodes.append(helper.make_node("Softmax", [previous], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", 4, "H", "W"])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"format_version": 1, "classes": ["background", "bone", "fat", "other"],
            "colors": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], "tile": tile, "divisor": divisor,
            "members": [{"name": f"conv{layers}x{channels}", "weight": 1.0}], "precision": "fp32"}
    helper.set_model_props(model, {"bonemarrow": json.dumps(meta)})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def synthetic_scan(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Near-white glass with an elongated, wavy band of textured H&E-like tissue over about half the area."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    centre = height / 2 + 0.12 * height * np.sin(xx / width * 2 * np.pi)
    half = 0.27 * height * np.clip(np.sin(np.pi * (xx + 0.02 * width) / (1.04 * width)), 0, 1) ** 0.3
    edge = cv2.GaussianBlur(rng.normal(0, 1, (height // 16 + 1, width // 16 + 1)).astype(np.float32), (0, 0), 2)
    edge = cv2.resize(edge, (width, height)) * 0.06 * height
    tissue = np.abs(yy - centre) < half + edge
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (244, 242, 246)
    image += rng.integers(0, 6, (height, width, 1), dtype=np.uint8)  # scanner noise on glass
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3)
    pink = np.stack([215 + 25 * noise, 120 + 30 * noise, 175 + 20 * noise], axis=-1)
    bone = cv2.GaussianBlur(rng.normal(0, 1, (height // 8, width // 8)).astype(np.float32), (0, 0), 3)
    bone = cv2.resize(bone, (width, height)) > 0.25
    pink[bone] = np.stack([200 + 20 * noise, 60 + 20 * noise, 110 + 20 * noise], axis=-1)[bone]
    image[tissue] = np.clip(pink[tissue], 0, 255).astype(np.uint8)
    # Fat: white holes with pink rims inside the tissue.
    for _ in range(int(width * height / 40_000)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        if tissue[y, x]:
            r = int(rng.integers(15, 45))
            cv2.circle(image, (int(x), int(y)), r, (200, 110, 170), 3)
            cv2.circle(image, (int(x), int(y)), r - 3, (240, 236, 240), -1)
    return image


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(config: str, model: Path, image_path: Path, threads: int, batch: int, repeats: int) -> dict:
    """One configuration in this process (called in a fresh subprocess by main, so peak RSS is its own)."""
    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.segmenter import Segmenter
    from bonemarrow.runtime.tiling import TilingConfig, sliding_window_inference

    options = CONFIGS[config]
    image = np.load(image_path)
    height, width = image.shape[:2]
    loaded = open_model(model, "cpu", threads)
    tiling = TilingConfig(batch_size=batch).resolved(loaded.info)
    Segmenter(loaded, tiling).segment(image[:512, :1024])  # warm up the session
    rss_before = peak_rss_mb()
    walls, model_times, result = [], [], None
    for _ in range(repeats):
        model_before = loaded.model_seconds
        start = time.perf_counter()
        result = sliding_window_inference(
            image, loaded.predict, tile=tiling.tile, overlap=tiling.overlap, batch_size=batch,
            divisor=loaded.info.divisor, skip_background=options["skip_background"], banded=options["banded"])
        walls.append(time.perf_counter() - start)
        model_times.append(loaded.model_seconds - model_before)
    best = int(np.argmin(walls))
    glass = float((result.labels == 0).mean())
    return {
        "config": config,
        "wall_seconds": round(walls[best], 3),
        "wall_seconds_all": [round(w, 3) for w in walls],
        "model_seconds": round(model_times[best], 3),
        "model_share": round(model_times[best] / walls[best], 3),
        "megapixels_per_second": round(height * width / 1e6 / walls[best], 3),
        "tiles_total": result.tiles_total,
        "tiles_skipped": result.tiles_skipped,
        "accumulator_peak_rows": result.peak_band_rows,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_before_inference_mb": round(rss_before, 1),  # image + session + warm-up
        "image_mb": round(image.nbytes / 2**20, 1),
        "background_label_fraction": round(glass, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.model, args.image, args.threads, args.batch, args.repeats)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = conv_model(Path(tmp) / "bench_conv.onnx")
        image = synthetic_scan(args.height, args.width)
        np.save(Path(tmp) / "scan.npy", image)
        from bonemarrow.runtime.tissue import tissue_pixels

        runs = []
        for config in args.configs.split(","):
            command = [sys.executable, "-m", "bonemarrow.benchmarks.bench_runtime", "--one", config, "--model",
                       str(model), "--image", str(Path(tmp) / "scan.npy"), "--threads",
                       str(args.threads), "--batch", str(args.batch), "--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    import onnxruntime

    document = {
        "benchmark": "bench_runtime",
        "command": "python -m bonemarrow.benchmarks.bench_runtime " + " ".join(argv or sys.argv[1:]),
        "image": {"height": args.height, "width": args.width, "glass_fraction":
                  round(1 - float(tissue_pixels(image).mean()), 3), "kind": "procedural H&E stand-in"},
        "model": "4 x Conv3x3 (16 channels) + softmax, fp32, tile 512, divisor 32, overlap 0.25",
        "threads": args.threads,
        "batch": args.batch,
        "machine": {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "cpus": os.cpu_count(), "processor": platform.machine()},
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
