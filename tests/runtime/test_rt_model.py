"""open_model: one session, checked and hashed once; predict and its timing."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import rt_models
from conftest import cuda_status
from bonemarrow.runtime import model as model_module
from bonemarrow.runtime.contract import ModelContractError, file_sha256
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.providers import CUDA, ProviderError

HAS_CUDA = CUDA in ort.get_available_providers()


@pytest.fixture
def model_path(tmp_path):
    return rt_models.save(rt_models.pixelwise(), tmp_path / "m.onnx")


@pytest.fixture
def counts(monkeypatch):
    """Count onnxruntime session constructions and file hashes."""
    calls = {"sessions": 0, "hashes": 0}
    real_session, real_hash = ort.InferenceSession, model_module.file_sha256

    def counting_session(*args, **kwargs):
        calls["sessions"] += 1
        return real_session(*args, **kwargs)

    def counting_hash(*args, **kwargs):
        calls["hashes"] += 1
        return real_hash(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting_session)
    monkeypatch.setattr(model_module, "file_sha256", counting_hash)
    return calls


@pytest.mark.parametrize("provider", ["cpu", "auto"])
def test_a_model_is_opened_checked_and_hashed_once(model_path, counts, provider):
    if provider == "auto" and HAS_CUDA:
        pytest.skip("a CUDA build: auto opens its one session on CUDA")
    model = open_model(model_path, provider, threads=1)
    assert counts == {"sessions": 1, "hashes": 1}
    assert model.sha256 == file_sha256(model_path)
    assert model.info.tile == 64 and model.info.divisor == 8 and model.info.path == model_path
    assert model.provider == "CPUExecutionProvider" and model.choice.describe().startswith("provider: CPU")


def test_a_cuda_attempt_that_fails_costs_one_more_session_not_two(model_path, counts, monkeypatch):
    """CUDA advertised but unable to start (simulated on the CPU build): the failed CUDA
    attempt and the CPU session that runs the model, and nothing else (real on a GPU build without a GPU)."""
    if cuda_status() == "runs":
        pytest.skip("needs a machine where CUDA cannot start")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    model = open_model(model_path, "auto")
    assert counts == {"sessions": 2, "hashes": 1}
    assert model.provider == "CPUExecutionProvider" and "CUDA could not start" in model.choice.describe()
    with pytest.raises(ProviderError, match="--provider cuda: CUDA could not start"):
        open_model(model_path, "cuda")
    assert counts["hashes"] == 1  # a refused model is never hashed


def test_a_broken_model_is_refused_before_it_is_hashed(tmp_path, counts):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(ModelContractError, match="cannot load the model"):
        open_model(broken, "cpu")
    bad_meta = rt_models.save(rt_models.pixelwise(rt_models.metadata(tile=0)), tmp_path / "meta.onnx")
    with pytest.raises(ModelContractError, match="'tile' must be a positive integer"):
        open_model(bad_meta, "cpu")
    assert counts["hashes"] == 0


def test_predict_returns_probabilities_and_counts_model_time_per_thread(model_path):
    model = open_model(model_path, "cpu", threads=1)
    before = model.model_seconds
    probs = model.predict(np.zeros((2, 3, 16, 24), np.uint8))
    assert probs.shape == (2, 4, 16, 24) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.model_seconds > before
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(model.model_seconds))
    thread.start()
    thread.join()
    assert seen == [0.0]  # another thread (another visitor) starts from nothing
