"""onnxruntime's CUDA provider for real (scripts/gpu_smoke.sh runs these on a GPU machine; skipped elsewhere).

Skipped unless this onnxruntime has the CUDA provider and a session really starts on it.
"""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import rt_models
from conftest import tissue_image
from bonemarrow.runtime.model import bundled_model_path, open_model
from bonemarrow.runtime.providers import CUDA, CudaSettings, ProviderError, open_session
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _cuda_works() -> str:
    """'' when a CUDA session really starts, else why not."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return "this onnxruntime has no CUDA provider (needs onnxruntime-gpu)"
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = rt_models.save(rt_models.pixelwise(), Path(scratch) / "m.onnx")
        try:
            open_session(path, "cuda")
        except ProviderError as error:
            return str(error)
    return ""


WHY_NOT = _cuda_works()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(bool(WHY_NOT), reason=f"needs a CUDA device: {WHY_NOT}")]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda-models")
    return {name: rt_models.save(getattr(rt_models, name)(rt_models.metadata(tile=64, divisor=8)),
                                 root / f"{name}.onnx") for name in ("pixelwise", "receptive")}


def test_the_cuda_session_has_our_options(paths):
    settings = CudaSettings(gpu_mem_limit=4 << 30)
    session, choice = open_session(paths["receptive"], "cuda", cuda=settings)
    assert choice.provider == CUDA and session.get_providers()[0] == CUDA
    options = session.get_provider_options()[CUDA]
    for key, value in settings.provider_options().items():
        assert options.get(key) == value, (key, options.get(key), value)


def test_io_binding_on_cuda_equals_session_run_on_cuda(paths):
    model = open_model(paths["receptive"], "cuda")
    assert model.io_binding and model.provider == CUDA
    rng = np.random.default_rng(0)
    for shape in [(4, 3, 64, 64), (4, 3, 64, 64), (1, 3, 64, 64), (4, 3, 32, 48)]:
        batch = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(model.predict(batch), model.session.run(None, {"image": batch})[0],
                                   rtol=1e-6, atol=1e-7)


def test_cuda_agrees_with_the_cpu(paths):
    cpu, cuda = open_model(paths["receptive"], "cpu", 1), open_model(paths["receptive"], "cuda")
    image = tissue_image(150, 210, seed=1)
    config = TilingConfig(tile=64, overlap=0.25, batch_size=4)
    on_cpu = Segmenter(cpu, config).segment(image, return_probs=True)
    on_cuda = Segmenter(cuda, TilingConfig(tile=64, overlap=0.25, batch_size=4, fixed_batch=True)
                        ).segment(image, return_probs=True)
    np.testing.assert_allclose(on_cuda.probs, on_cpu.probs, atol=1e-4)
    assert (on_cuda.labels == on_cpu.labels).mean() >= 0.999


def test_fixed_batches_on_cuda_give_identical_labels(paths):
    model = open_model(paths["receptive"], "cuda")
    image = tissue_image(170, 130, seed=2)
    plain = Segmenter(model, TilingConfig(tile=64, batch_size=3)).segment(image, return_probs=True)
    fixed = Segmenter(model, TilingConfig(tile=64, batch_size=3, fixed_batch=True)).segment(image, return_probs=True)
    np.testing.assert_array_equal(fixed.labels, plain.labels)
    np.testing.assert_allclose(fixed.probs, plain.probs, rtol=1e-6, atol=1e-7)


def test_cuda_graph_replays_give_the_same_outputs(paths):
    graph = open_model(paths["receptive"], "cuda", cuda=CudaSettings(cuda_graph=True))
    if not graph.choice.cuda_graph:
        pytest.skip(f"onnxruntime refused a CUDA graph for this model: {graph.choice.note}")
    plain = open_model(paths["receptive"], "cuda")
    rng = np.random.default_rng(3)
    for shape in [(4, 3, 64, 64)] * 4 + [(2, 3, 64, 64)] * 3 + [(4, 3, 64, 64)]:
        batch = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(graph.predict_view(batch), plain.predict(batch), rtol=1e-5, atol=1e-6)


def test_threads_share_a_cuda_model(paths):
    model = open_model(paths["pixelwise"], "cuda")
    rng = np.random.default_rng(4)
    inputs = [rng.integers(0, 256, (4, 3, 64, 64), dtype=np.uint8) for _ in range(6)]
    expected = [rt_models.pixelwise_numpy(b) for b in inputs]
    errors = []

    def work(offset):
        for _ in range(10):
            for index in range(offset, len(inputs), 2):
                if not np.allclose(model.predict_view(inputs[index]), expected[index], atol=1e-5):
                    errors.append(index)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.skipif(not bundled_model_path().is_file(), reason="no bundled model in this checkout")
def test_the_shipped_model_on_cuda_agrees_with_the_cpu_on_a_sample():
    rgb = np.ascontiguousarray(cv2.imread(str(SAMPLES / "biopsy_1.jpg"))[..., ::-1])
    cpu = Segmenter(open_model(bundled_model_path(), "cpu")).segment(rgb)
    cuda_model = open_model(bundled_model_path(), "cuda")
    cuda = Segmenter(cuda_model, TilingConfig(fixed_batch=True)).segment(rgb)
    assert (cuda.labels == cpu.labels).mean() >= 0.999


def test_bm_run_on_cuda(tmp_path, paths):
    from bonemarrow.runtime.cli.run import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "scan.png"), tissue_image(120, 200)[..., ::-1])
    result = CliRunner().invoke(main, [str(inputs), "-o", str(tmp_path / "out"), "--model", str(paths["receptive"]),
                                       "--provider", "cuda"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith("provider: CUDA (CUDAExecutionProvider")
    assert (tmp_path / "out" / "scan_labels.png").exists()
