"""onnxruntime CUDA rows: run as bm-run runs them (IO binding, fixed shapes); the GPU check script rehearsed on the CPU."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import rt_models  # noqa: E402

from bonemarrow.runtime import model as model_module  # noqa: E402


@pytest.fixture
def tiny_model(tmp_path):
    return rt_models.save(rt_models.pixelwise(rt_models.metadata(tile=32, divisor=8)), tmp_path / "tiny.onnx")


def _cuda_on_the_cpu(monkeypatch):
    """open_model(..., "cuda") opens on the CPU with IO binding: the CUDA code path without a GPU."""
    real = model_module.open_model
    calls = []

    def open_model(path, provider="auto", threads=None, **kwargs):
        calls.append((provider, kwargs))
        if provider == "cuda":
            kwargs = {**kwargs, "io_binding": True}
            provider = "cpu"
        return real(path, provider, threads, **kwargs)

    monkeypatch.setattr(model_module, "open_model", open_model)
    return calls


def test_tile_bench_onnxruntime_cuda_rows_use_io_binding(tiny_model, monkeypatch):
    torch = pytest.importorskip("torch")
    from bonemarrow.benchmarks.models import ModelSet
    from bonemarrow.benchmarks.tile_bench import backends

    calls = _cuda_on_the_cpu(monkeypatch)
    models = ModelSet(preset="compact", torch_model=torch.nn.Identity(), trained=False, source="test", tile=32,
                      divisor=8, onnx={"fp32": tiny_model}, onnx_origin={"fp32": "given"})
    rows = {(b, p, d): (predict, why) for b, p, d, predict, why in backends(models, threads=1)}
    predict, why = rows[("onnxruntime", "fp32", "cuda")]
    assert why == "" and calls == [("cuda", {})]
    assert predict.__self__.io_binding and predict.__name__ == "predict_view"
    batch = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(predict(batch), predict.__self__.session.run(None, {"image": batch})[0])


def test_bmrun_worker_warms_up_the_batch_shape_it_will_send(tiny_model, monkeypatch):
    pytest.importorskip("torch")  # the worker module imports the training registry
    from bonemarrow.benchmarks.worker import _bmrun_model
    from bonemarrow.runtime.providers import CUDA, SessionChoice

    model, config = _bmrun_model({"model": str(tiny_model), "provider": "cpu", "threads": 1})
    assert not config.fixed_batch and not model.io_binding and config.tile == 32

    real = model_module.open_model
    seen = []

    def on_cuda(path, provider, threads, **kwargs):
        loaded = real(path, "cpu", threads, io_binding=True)
        object.__setattr__(loaded, "choice", SessionChoice(CUDA, provider, threads))
        original = loaded.predict_view
        object.__setattr__(loaded, "predict_view", lambda batch: seen.append(batch.shape) or original(batch))
        return loaded

    monkeypatch.setattr(model_module, "open_model", on_cuda)
    model, config = _bmrun_model({"model": str(tiny_model), "provider": "cuda", "threads": 1})
    assert config.fixed_batch and seen == [(config.batch_size, 3, 32, 32)] * 2


def test_the_gpu_check_script_runs_on_the_cpu(tiny_model, tmp_path, capsys):
    pytest.importorskip("torch")  # the synthetic scan comes from bonemarrow.training.synth
    from bonemarrow.benchmarks import ort_cuda

    assert ort_cuda.main(["--provider", "cpu", "--model", str(tiny_model), "--batches", "1,3", "--repeats", "1",
                          "--whole-repeats", "1", "--width", "150", "--height", "70", "--threads", "1",
                          "--machine", "test box", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "test-box_ort_cpu.md").read_text()
    assert "| tiny.onnx | fp32 | io binding | 3 |" in text and "| tiny.onnx | fp32 | session.run | 1 |" in text
    assert "100.0000 %" in text  # the CPU run agrees with the CPU reference
    assert (tmp_path / "test-box_ort_cpu.json").exists()


def test_tile_rows_for_the_devices_asked(tiny_model):
    torch = pytest.importorskip("torch")
    from bonemarrow.benchmarks.models import ModelSet
    from bonemarrow.benchmarks.tile_bench import backends

    models = ModelSet(preset="compact", torch_model=torch.nn.Identity(), trained=False, source="test", tile=32,
                      divisor=8, onnx={"fp32": tiny_model}, onnx_origin={"fp32": "given"})
    assert {d for _, _, d, _, _ in backends(models, 1, ("cuda",))} == {"cuda"}
    assert {d for _, _, d, _, _ in backends(models, 1, ("cpu",))} == {"cpu"}


def test_bm_bench_refuses_unknown_tile_devices_and_whole_precisions():
    pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    from click.testing import CliRunner

    from bonemarrow.benchmarks.cli import main

    result = CliRunner().invoke(main, ["--tile-devices", "tpu"])
    assert result.exit_code == 2 and "--tile-devices" in result.output
    result = CliRunner().invoke(main, ["--whole-precisions", "fp64"])
    assert result.exit_code == 2 and "--whole-precisions" in result.output
