"""Checkpoint round trip and refusal of anything that does not match."""
from __future__ import annotations

import pytest
import torch

from bonemarrow.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from bonemarrow.training.models import build_model


class _NotData:
    pass


def test_round_trip_keeps_weights_member_weights_and_config(tmp_path):
    torch.manual_seed(1)
    model = build_model("compact", unet_features=4)
    model.set_member_weights([0.3, 0.7])
    with torch.no_grad():  # make BN running stats non-default so buffers are really checked
        model.members["unet"].encoders[0].body[1].running_mean.add_(0.5)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, {"dataset_hash": "abc123", "step": 7}, optimizer={"lr": 0.1})
    loaded, config = load_checkpoint(path)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert config["dataset_hash"] == "abc123" and config["step"] == 7
    assert config["preset"] == "compact" and config["overrides"] == {"unet_features": 4}
    assert [m["name"] for m in config["members"]] == ["unet", "deeplabv3"]
    assert config["members"][1]["weight"] == pytest.approx(0.7)
    assert config["classes"] == ["background", "bone", "fat", "other"]
    assert read_checkpoint(path)["optimizer"] == {"lr": 0.1}
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(model.eval()(image), loaded(image))


def test_shape_mismatch_is_refused_in_one_line(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_model("compact", unet_features=8), {})
    payload = torch.load(path, weights_only=True)
    payload["config"]["overrides"] = {"unet_features": 4}
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "shape mismatch" in message


def test_missing_and_unexpected_keys_are_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_model("compact", unet_features=4), {})
    payload = torch.load(path, weights_only=True)
    payload["model"]["extra.weight"] = torch.zeros(1)
    del payload["model"]["members.unet.head.bias"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\).*1 unexpected key\(s\)"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"plain text", "not a PyTorch checkpoint file"),
        ({"weights": torch.zeros(2)}, "not a bonemarrow checkpoint"),
        ({"thing": _NotData()}, "refused"),
    ],
)
def test_non_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
