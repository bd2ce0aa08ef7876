"""CUDA provider options as intended, the CUDA-graph retry, and which onnxruntime wheel counts as installed.

None of this needs a GPU: onnxruntime's session constructor is replaced by a recorder
that plays a CUDA session, so what open_session asks onnxruntime for is checked.
"""
from __future__ import annotations

import importlib.machinery
import importlib.metadata
from pathlib import Path

import onnxruntime as ort
import pytest

import rt_models
from bonemarrow.runtime import providers as providers_module
from bonemarrow.runtime.providers import CPU, CUDA, CUDA_OPTIONS, CudaSettings, ProviderError, open_session


@pytest.fixture
def model_path(tmp_path):
    return rt_models.save(rt_models.pixelwise(), tmp_path / "m.onnx")


def test_default_cuda_options():
    assert CUDA_OPTIONS == {
        "device_id": "0",
        "cudnn_conv_algo_search": "HEURISTIC",
        "cudnn_conv_use_max_workspace": "1",
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": "1",
        "enable_cuda_graph": "0",
    }


def test_cuda_settings_map_to_provider_options():
    settings = CudaSettings(device_id=1, cudnn_conv_algo_search="EXHAUSTIVE", cudnn_conv_use_max_workspace=False,
                            arena_extend_strategy="kNextPowerOfTwo", gpu_mem_limit=8 << 30, cuda_graph=True)
    assert settings.provider_options() == {
        "device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "cudnn_conv_use_max_workspace": "0",
        "arena_extend_strategy": "kNextPowerOfTwo", "do_copy_in_default_stream": "1", "enable_cuda_graph": "1",
        "gpu_mem_limit": str(8 << 30)}


@pytest.mark.parametrize("field, value", [
    ("device_id", -1), ("cudnn_conv_algo_search", "FAST"), ("arena_extend_strategy", "grow"),
    ("gpu_mem_limit", 0), ("gpu_mem_limit", True), ("cuda_graph", 1), ("cudnn_conv_use_max_workspace", "1"),
])
def test_bad_cuda_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        CudaSettings(**{field: value})


class FakeCudaSession:
    """What the providers code reads off a session, for a session that 'runs on CUDA'."""

    def __init__(self, providers):
        self._providers = providers

    def get_providers(self):
        return [CUDA, CPU]

    def get_provider_options(self):
        return {name: dict(options) for name, options in self._providers}


@pytest.fixture
def recorder(monkeypatch):
    """Advertise CUDA and record every InferenceSession(...) call; `refuse_graph` fails graph sessions."""
    calls = []
    state = {"refuse_graph": False}
    real = ort.InferenceSession

    def session(path, options=None, providers=None, **kwargs):
        calls.append(providers)
        first = providers[0]
        if isinstance(first, tuple) and first[0] == CUDA:
            if state["refuse_graph"] and first[1].get("enable_cuda_graph") == "1":
                raise RuntimeError("This session cannot use the CUDA Graph feature as requested by the user "
                                   "as all compute graph nodes have not been partitioned to the CUDA EP.")
            return FakeCudaSession([first, (CPU, {})])
        return real(path, options, providers=providers, **kwargs)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", session)
    return calls, state


def test_open_session_passes_the_cuda_options(model_path, recorder):
    calls, _ = recorder
    settings = CudaSettings(cudnn_conv_algo_search="EXHAUSTIVE", gpu_mem_limit=1 << 30)
    session, choice = open_session(model_path, "cuda", cuda=settings)
    assert calls == [[(CUDA, settings.provider_options()), CPU]]
    assert session.get_provider_options()[CUDA]["gpu_mem_limit"] == str(1 << 30)
    assert choice.provider == CUDA and choice.cuda == settings and not choice.cuda_graph
    assert choice.describe() == f"provider: CUDA ({CUDA})"
    open_session(model_path, "auto")
    assert calls[-1] == [(CUDA, CUDA_OPTIONS), CPU]


def test_a_refused_cuda_graph_costs_the_graph_not_cuda(model_path, recorder):
    calls, state = recorder
    state["refuse_graph"] = True
    _, choice = open_session(model_path, "cuda", cuda=CudaSettings(cuda_graph=True))
    assert [c[0][1]["enable_cuda_graph"] for c in calls] == ["1", "0"]
    assert choice.provider == CUDA and not choice.cuda_graph and choice.cuda.cuda_graph is False
    line = choice.describe()
    assert "\n" not in line and line.startswith("provider: CUDA") and "CUDA graphs off (This session cannot" in line


def test_an_accepted_cuda_graph_is_reported(model_path, recorder):
    _, choice = open_session(model_path, "cuda", cuda=CudaSettings(cuda_graph=True))
    assert choice.cuda_graph and choice.describe() == f"provider: CUDA ({CUDA}, CUDA graphs)"


def test_cpu_sessions_take_no_cuda_options(model_path, recorder):
    calls, _ = recorder
    session, choice = open_session(model_path, "cpu", cuda=CudaSettings(cuda_graph=True))
    assert calls == [[CPU]] and choice.provider == CPU and choice.cuda is None and not choice.cuda_graph
    assert CPU in session.get_provider_options()


def test_cuda_graph_without_cuda_is_the_usual_one_line_refusal(model_path, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    with pytest.raises(ProviderError, match="no CUDA provider") as caught:
        open_session(model_path, "cuda", cuda=CudaSettings(cuda_graph=True))
    assert "\n" not in str(caught.value)


class FakeDist:
    def __init__(self, root: Path):
        self.root = root

    def locate_file(self, name):
        return self.root / name


def _fake_install(monkeypatch, tmp_path, cpu_dir: str, gpu_dir: str, imported_dir: str):
    dists = {"onnxruntime": FakeDist(tmp_path / cpu_dir), "onnxruntime-gpu": FakeDist(tmp_path / gpu_dir)}
    for root in dists.values():
        (root.root / "onnxruntime").mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dists[name])
    origin = str(tmp_path / imported_dir / "onnxruntime" / "__init__.py")
    monkeypatch.setattr(providers_module.importlib.util, "find_spec",
                        lambda name: importlib.machinery.ModuleSpec(name, None, origin=origin))


def test_two_wheels_in_one_directory_clash(monkeypatch, tmp_path):
    _fake_install(monkeypatch, tmp_path, "site", "site", "site")
    assert providers_module.installed_runtimes() == ["onnxruntime", "onnxruntime-gpu"]


def test_a_gpu_wheel_on_pythonpath_over_a_cpu_wheel_is_one_runtime(monkeypatch, tmp_path):
    """The device machine's recipe: onnxruntime-gpu installed with --target on PYTHONPATH over the
    image's CPU onnxruntime. Python imports the GPU wheel, whole; the CPU wheel is shadowed."""
    _fake_install(monkeypatch, tmp_path, "system-site", "target", "target")
    assert providers_module.installed_runtimes() == ["onnxruntime-gpu"]
