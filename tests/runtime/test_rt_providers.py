"""Provider choice: auto falls back quietly with one line, cuda never runs silently on the CPU."""
from __future__ import annotations

import subprocess
import sys

import onnxruntime as ort
import pytest

import rt_models
from conftest import cuda_status
from bonemarrow.runtime import providers as providers_module
from bonemarrow.runtime.providers import CUDA, InstallError, ProviderError, open_session

HAS_CUDA = CUDA in ort.get_available_providers()  # a CUDA build (CUDA may still fail to start)
CUDA_RUNS = cuda_status() == "runs"


@pytest.fixture
def model_path(tmp_path):
    return rt_models.save(rt_models.pixelwise(), tmp_path / "m.onnx")


@pytest.mark.skipif(CUDA_RUNS, reason="CUDA runs here; the refusal needs a machine where it cannot")
def test_cuda_request_fails_clearly_without_cuda(model_path):
    why = "no CUDA provider" if not HAS_CUDA else "CUDA could not start"  # a CPU build / a GPU build without a GPU
    with pytest.raises(ProviderError, match=f"--provider cuda: .*{why}") as caught:
        open_session(model_path, "cuda")
    assert "\n" not in str(caught.value)


def test_auto_falls_back_to_cpu_with_one_line_and_no_noise(model_path):
    """Run in a subprocess so that anything onnxruntime writes to fds 1 and 2 is seen."""
    code = ("from bonemarrow.runtime.model import open_model;"
            f"m = open_model({str(model_path)!r}, provider='auto'); print(m.choice.describe())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    if CUDA_RUNS:
        pytest.skip("CUDA runs here: the fallback is only seen where it cannot")
    assert len(lines) == 1 and lines[0].startswith("provider: CPU"), lines  # a GPU build's load errors stay quiet


def test_auto_with_a_cuda_build_that_cannot_start_cuda_falls_back_silently(model_path, monkeypatch, capfd):
    """An onnxruntime-gpu wheel on a machine without CUDA libraries: CUDA is 'available' but the
    session ends up on the CPU. Simulated by advertising CUDA on the CPU build (real on a GPU build
    without a GPU)."""
    if CUDA_RUNS:
        pytest.skip("needs a machine where CUDA cannot start")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    session, choice = open_session(model_path, "auto")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert choice.provider == "CPUExecutionProvider" and "CUDA could not start" in choice.describe()
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError, match="CUDA could not start"):
        open_session(model_path, "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA_RUNS, reason="needs onnxruntime-gpu and a CUDA device")
def test_cuda_runs_on_a_gpu(model_path):
    _, choice = open_session(model_path, "cuda")
    assert choice.provider == CUDA


def test_cpu_uses_the_cpus_we_may_use(model_path):
    _, choice = open_session(model_path, "cpu")
    assert choice.provider == "CPUExecutionProvider" and choice.threads >= 1
    _, choice = open_session(model_path, "cpu", threads=1)
    assert choice.threads == 1 and "1 threads" in choice.describe()


def test_unknown_provider_is_refused(model_path):
    with pytest.raises(ProviderError, match="auto, cpu, cuda"):
        open_session(model_path, "tpu")


def test_both_runtime_wheels_installed_is_refused(monkeypatch):
    monkeypatch.setattr(providers_module, "installed_runtimes", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(InstallError, match="both onnxruntime and onnxruntime-gpu"):
        providers_module.import_onnxruntime()


def test_missing_runtime_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setattr(providers_module, "installed_runtimes", lambda: [])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(InstallError, match=r"bonemarrow-seg\[cpu\]"):
        providers_module.import_onnxruntime()
