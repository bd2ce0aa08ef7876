"""bm-run's CUDA options: the one fallback line, the one refusal line, settings passed as typed."""
from __future__ import annotations

import subprocess
import sys

import cv2
import pytest
from click.testing import CliRunner

import rt_models
from conftest import cuda_status, tissue_image
from bonemarrow.runtime.cli.run import main
from bonemarrow.runtime.providers import CudaSettings

CUDA_RUNS = cuda_status() == "runs"


@pytest.fixture
def setup(tmp_path):
    model = rt_models.save(rt_models.pixelwise(rt_models.metadata(tile=32, divisor=8)), tmp_path / "m.onnx")
    inputs = tmp_path / "in"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "scan.png"), tissue_image(50, 70)[..., ::-1])
    return tmp_path, model, inputs


@pytest.mark.skipif(CUDA_RUNS, reason="the fallback line is only seen where CUDA cannot run")
def test_auto_without_cuda_says_one_line_and_runs_on_the_cpu(setup):
    """A real process, so anything onnxruntime prints to fds 1 and 2 would show."""
    tmp, model, inputs = setup
    done = subprocess.run([sys.executable, "-m", "bonemarrow.runtime.cli.run", str(inputs), "-o", str(tmp / "out"),
                           "--model", str(model), "--provider", "auto"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    provider_lines = [line for line in done.stderr.splitlines() if "provider" in line.lower()]
    assert len(provider_lines) == 1 and provider_lines[0].startswith("provider: CPU (CPUExecutionProvider")
    assert "no CUDA provider" in provider_lines[0] or "CUDA could not start" in provider_lines[0]
    assert (tmp / "out" / "scan_labels.png").exists()


@pytest.mark.skipif(CUDA_RUNS, reason="needs a machine where CUDA cannot run")
@pytest.mark.parametrize("extra", [[], ["--cuda-graph", "--cudnn-search", "exhaustive"]])
def test_cuda_without_cuda_fails_with_one_line(setup, extra):
    tmp, model, inputs = setup
    result = CliRunner().invoke(main, [str(inputs), "-o", str(tmp / "out"), "--model", str(model),
                                       "--provider", "cuda", *extra])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: --provider cuda:")


def test_cuda_settings_and_fixed_batch_flow_from_the_options(setup, monkeypatch):
    from bonemarrow.runtime import model as model_module
    from bonemarrow.runtime.batch import local

    tmp, model, inputs = setup
    seen = {}
    real_open = model_module.open_model

    def open_model(path, provider, threads, *, cuda=None, io_binding=None):
        seen["cuda"] = cuda
        return real_open(path, "cpu", threads, cuda=cuda, io_binding=io_binding)

    def run_batch(loaded, config, items, outdir, **kwargs):
        seen["config"] = config
        return local.BatchReport()

    monkeypatch.setattr(model_module, "open_model", open_model)
    monkeypatch.setattr(local, "run_batch", run_batch)
    runner = CliRunner()
    runner.invoke(main, [str(inputs), "-o", str(tmp / "o1"), "--model", str(model), "--quiet"])
    assert seen["cuda"] == CudaSettings() and seen["config"].fixed_batch is False  # CPU: no padding by default
    runner.invoke(main, [str(inputs), "-o", str(tmp / "o2"), "--model", str(model), "--quiet", "--fixed-batch",
                         "--cudnn-search", "exhaustive", "--cuda-graph"])
    assert seen["cuda"] == CudaSettings(cudnn_conv_algo_search="EXHAUSTIVE", cuda_graph=True)
    assert seen["config"].fixed_batch is True
