"""Both presets export, from checkpoints written on a CPU or on a GPU."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from bonemarrow.export.exporter import export_checkpoint
from bonemarrow.runtime.model import open_model
from bonemarrow.training.checkpoint import save_checkpoint

from conftest import small_options, tiny_model


def test_the_gpu_checkpoint_fixture_really_claims_cuda_storages(gpu_checkpoint, exported):
    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine the file loads anyway")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(gpu_checkpoint, weights_only=True)
    # ... and the fp32 export (test_export_contract.py) was made from it, on this CPU-only machine.
    result = exported("fp32")
    assert result.passed and result.report["checkpoint"] == str(gpu_checkpoint)


@pytest.mark.slow
def test_seed_preset_exports_with_parity(tmp_path):
    """ResNet-101 DeepLab + U-Net: the big graph, exported once at small gate sizes (~40 s of CPU)."""
    checkpoint = tmp_path / "seed.pt"
    save_checkpoint(checkpoint, tiny_model("seed"), {})
    result = export_checkpoint(checkpoint, tmp_path / "seed.onnx",
                               small_options(shapes=((2, 64, 96), (1, 96, 64), (3, 32, 64))))
    gate = result.report["gates"]["fp32"]
    assert result.passed, gate["failures"]
    assert gate["max_abs_prob_diff"] <= 1e-4 and gate["label_agreement"] >= 0.9999
    assert len({tuple(s["shape"]) for s in gate["samples"]}) == 3
    info = open_model(result.model_path, "cpu", 1).info
    assert info.metadata["preset"] == "seed" and info.divisor == 32
    session = ort.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"image": np.zeros((1, 3, 64, 32), np.uint8)})[0]
    assert probs.shape == (1, 4, 64, 32)
