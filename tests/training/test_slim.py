from __future__ import annotations

import pytest
import torch

from bonemarrow.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from bonemarrow.training.models import build_model
from bonemarrow.training.slim import slim_checkpoint


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    model = build_model("compact", unet_features=4)
    model.set_member_weights([0.7, 0.3])
    path = tmp_path / "train.pt"
    save_checkpoint(path, model, {"step": 3}, optimizer={"state": {0: {"exp_avg": torch.ones(1000)}}})
    return model.eval(), path


def test_slim_drops_training_state_and_keeps_the_model(tmp_path, trained):
    model, path = trained
    slim_checkpoint(path, tmp_path / "ship.pt")
    assert "optimizer" not in read_checkpoint(tmp_path / "ship.pt")
    loaded, config = load_checkpoint(tmp_path / "ship.pt")
    assert config["step"] == 3 and config["stored_dtype"] == "float32"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_half_weights_halve_the_file_and_load_as_float32(tmp_path, trained):
    model, path = trained
    slim_checkpoint(path, tmp_path / "full.pt")
    slim_checkpoint(path, tmp_path / "half.pt", half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    loaded, _ = load_checkpoint(tmp_path / "half.pt")
    for key, value in loaded.state_dict().items():
        original = model.state_dict()[key]
        assert value.dtype == original.dtype, key
        if original.is_floating_point():
            assert torch.equal(value, original.half().to(original.dtype)), key
    image = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        assert (loaded(image) - model(image)).abs().max() < 1e-2


def test_refuses_a_bad_source_and_writes_nothing(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(CheckpointError):
        slim_checkpoint(tmp_path / "bad.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
