"""GPU rows of bm-bench: which rows exist per device, never a figure for a device that did not run.

CUDA itself only runs where a GPU is; on CPU machines these tests check the row
plan, the refusals and the tiler job (bm-run's tiling over PyTorch) on the CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
pytest.importorskip("torch", reason="torch is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnxsim", reason="onnxsim is not installed (pip install 'bonemarrow-seg[export]')")
import torch
from click.testing import CliRunner

from bonemarrow.benchmarks import whole_bench
from bonemarrow.benchmarks.cli import main, resolve_devices
from bonemarrow.benchmarks.models import torch_predict
from bonemarrow.benchmarks.report import render_markdown
from bonemarrow.benchmarks.worker import run_tiler
from bonemarrow.runtime.io.writers import write_rgb_png
from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.tiling import sliding_window_inference
from bonemarrow.training.checkpoint import save_checkpoint
from bonemarrow.training.models import build_model
from bonemarrow.training.synth import generate_biopsy

NO_CUDA = not torch.cuda.is_available()


def test_devices_default_to_cpu_plus_a_gpu_only_when_one_is_seen():
    assert resolve_devices(None) == (("cpu",) if NO_CUDA else ("cpu", "cuda"))
    assert resolve_devices(("cpu", "cpu")) == ("cpu",)
    with pytest.raises(ValueError, match="cpu,cuda"):
        resolve_devices(("tpu",))


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["--devices", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "PyTorch sees no CUDA device" in result.output
    assert not list(tmp_path.iterdir())


def test_pytorch_fp16_is_cuda_only():
    model = torch.nn.Identity()
    with pytest.raises(ValueError, match="CUDA only"):
        torch_predict(model, "cpu", "fp16")
    with pytest.raises(ValueError, match="fp32 or fp16"):
        torch_predict(model, "cpu", "int8")


def test_whole_image_rows_per_device(tmp_path, monkeypatch):
    monkeypatch.setattr(whole_bench, "_ort_cuda_unusable", lambda model: "no CUDA provider here")
    onnx = {"fp32": tmp_path / "m.onnx", "int8": tmp_path / "m_int8.onnx"}
    configs, not_run = whole_bench.whole_configs(tmp_path / "c.pt", onnx, ["fp32", "int8", "fp16"],
                                                 ["cpu", "cuda"], 512)
    assert {name: (kind, base) for name, (kind, _, base) in configs.items()} == {
        "baseline": ("baseline", "baseline"),
        "bm-run fp32": ("bmrun", "baseline"),
        "bm-run int8": ("bmrun", "baseline"),
        "baseline cuda": ("baseline", "baseline cuda"),
        "tiler + pytorch fp32 cuda": ("tiler", "baseline cuda"),
        "tiler + pytorch fp16 cuda": ("tiler", "baseline cuda"),
    }
    assert configs["tiler + pytorch fp16 cuda"][1] == {"checkpoint": str(tmp_path / "c.pt"), "device": "cuda",
                                                       "precision": "fp16", "tile": 512}
    # onnxruntime's CUDA rows are reported as not run, with the reason, instead of a figure
    assert not_run == {"bm-run fp32 cuda": "no CUDA provider here", "bm-run int8 cuda": "no CUDA provider here"}

    monkeypatch.setattr(whole_bench, "_ort_cuda_unusable", lambda model: None)
    configs, not_run = whole_bench.whole_configs(tmp_path / "c.pt", onnx, ["fp32"], ["cuda"], 512)
    assert not_run == {}
    assert configs["bm-run fp32 cuda"] == ("bmrun", {"model": str(onnx["fp32"]), "provider": "cuda"}, "baseline cuda")
    assert "baseline" not in configs


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="needs an onnxruntime without a CUDA provider")
def test_onnxruntime_cuda_rows_say_why_they_cannot_run():
    shipped = Path(__file__).resolve().parents[2] / "models_onnx" / "bonemarrow_compact_int8.onnx"
    reason = whole_bench._ort_cuda_unusable(shipped)
    assert "no CUDA provider" in reason and "\n" not in reason


def test_markdown_lists_rows_that_did_not_run_and_gpu_peaks():
    summary = {"median": 1.0, "q1": 1.0, "q3": 1.0, "min": 1.0, "max": 1.0, "n": 1, "unit": "s"}
    row = {"wall_s": summary, "peak_rss_mib": {**summary, "unit": "MiB"},
           "stages_s": {s: summary for s in ("decode", "model", "blending", "writing")},
           "accuracy": {"dice": {"bone": 0.9, "fat": 0.9, "other": 0.9}, "weights": "trained", "density_error": 0.01}}
    report = {"machine": {"name": "box", "cpu_model": "cpu", "cpu_count": 16, "gpus": [{"name": "GPU"}],
                          "load_average": [0.0, 0.0, 0.0]},
              "matmul_peak": {**summary, "unit": "GFLOP/s", "method": "numpy"},
              "cuda_matmul_peaks": {"fp16": {**summary, "unit": "GFLOP/s", "method": "torch fp16 matmul"}},
              "created": "now", "quick": False, "settings": {"repeats": 1}, "models": {},
              "sections": {"whole": {"image": {"width": 60, "height": 20, "tissue_fraction": 0.5},
                                     "rows": {"baseline cuda": row},
                                     "not_run": {"bm-run fp32 cuda": "no CUDA provider here"}}}}
    text = render_markdown(report)
    assert "| bm-run fp32 cuda | not run: no CUDA provider here |" in text
    assert "GPU matmul peak fp16" in text


@pytest.fixture(scope="module")
def tiny_scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiler")
    torch.manual_seed(0)
    model = build_model("compact", unet_features=4, members=["unet"]).eval()
    checkpoint = root / "tiny.pt"
    save_checkpoint(checkpoint, model, {"tile": 64})
    rgb, _ = generate_biopsy(3, 300, 140)
    image = root / "scan.png"
    write_rgb_png(image, rgb)
    return root, checkpoint, model, rgb, image


def test_tiler_job_runs_bm_runs_tiling_over_pytorch(tiny_scan):
    root, checkpoint, model, rgb, image = tiny_scan
    result = run_tiler({"checkpoint": str(checkpoint), "device": "cpu", "precision": "fp32", "tile": 64,
                        "threads": 1, "image": str(image), "labels_out": str(root / "labels.png")})
    labels = read_label_png(result["labels"])
    expected = sliding_window_inference(rgb, torch_predict(model), tile=64, overlap=0.25, batch_size=4,
                                        divisor=int(model.divisor), blend="gaussian", skip_background=True,
                                        pad_mode="constant")
    np.testing.assert_array_equal(labels, expected.labels)
    assert (result["tiles_total"], result["tiles_skipped"]) == (expected.tiles_total, expected.tiles_skipped)
    assert set(result["stages_s"]) == set(whole_bench.STAGES)
    assert result["stages_s"]["model"] > 0 and result["device"] == "cpu"


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_cuda_tiler_fp16_agrees_with_fp32(tiny_scan):
    root, checkpoint, _, _, image = tiny_scan
    runs = {p: run_tiler({"checkpoint": str(checkpoint), "device": "cuda", "precision": p, "tile": 64, "threads": 1,
                          "image": str(image), "labels_out": str(root / f"labels-{p}.png")}) for p in ("fp32", "fp16")}
    a, b = (read_label_png(runs[p]["labels"]) for p in ("fp32", "fp16"))
    assert (a == b).mean() > 0.99
