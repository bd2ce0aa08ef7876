"""Model shapes, probabilities, presets and backbone-weight loading."""
from __future__ import annotations

import pytest
import torch

from bonemarrow.training.models import (
    BackboneWeightsError,
    DeepLabV3Member,
    UNet,
    build_model,
    load_backbone_weights,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _image(batch: int, height: int, width: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8)


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 32)])
def test_compact_output_has_input_size_and_is_a_distribution(size):
    model = build_model("compact", unet_features=4).eval()
    assert model.divisor == 32
    with torch.no_grad():
        probs = model(_image(2, *size))
    assert probs.shape == (2, 4, *size) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(dim=1), torch.ones(2, *size), atol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize("size", [(16, 16), (48, 80)])
def test_unet_alone_keeps_multiples_of_16(size):
    net = UNet(init_features=4).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, *size)).shape == (1, 4, *size)


@pytest.mark.parametrize("backbone", ["mobilenet_v3_large", "resnet50"])
def test_deeplab_members_return_input_size(backbone):
    member = DeepLabV3Member(backbone).eval()
    with torch.no_grad():
        assert member(torch.randn(1, 3, 64, 96)).shape == (1, 4, 64, 96)


def test_seed_preset_runs_once_at_small_size():
    model = build_model("seed").eval()
    assert model.member_names == ("unet", "deeplabv3")
    assert model.members["unet"].init_features == 32
    assert model.members["deeplabv3"].backbone_name == "resnet101"
    with torch.no_grad():
        probs = model(_image(1, 64, 64))
    assert probs.shape == (1, 4, 64, 64)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 64, 64), atol=1e-5)


def test_ensemble_is_the_weighted_average_of_member_softmax():
    model = build_model("compact", unet_features=4).eval()
    model.set_member_weights([3.0, 1.0])
    assert torch.allclose(model.member_weights, torch.tensor([0.75, 0.25]))
    image = _image(1, 32, 64)
    with torch.no_grad():
        expected = 0.75 * model.member_probabilities(image, "unet") + 0.25 * model.member_probabilities(image, "deeplabv3")
        assert torch.allclose(model(image), expected, atol=1e-6)
        model.set_member_weights([1.0, 0.0])
        assert torch.allclose(model(image), model.member_probabilities(image, "unet"), atol=1e-6)


def test_single_member_and_bad_settings():
    model = build_model("compact", unet_features=4, members=["unet"])
    assert model.member_names == ("unet",) and model.divisor == 16
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("huge")
    with pytest.raises(ValueError, match="unknown model setting"):
        build_model("compact", unet_feature=4)
    with pytest.raises(ValueError, match="member weights"):
        model.set_member_weights([-1.0])
    with pytest.raises(ValueError, match="multiples of 16"):
        model(_image(1, 24, 32))


def test_backbone_weights_load_and_mismatch_is_refused(tmp_path):
    source = DeepLabV3Member("mobilenet_v3_large")
    # A torchvision-style classification checkpoint: features.* keys plus a classifier head.
    state = {f"features.{k}": v for k, v in source.backbone.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(3, 3)
    good = tmp_path / "mnv3.pth"
    torch.save(state, good)
    target = DeepLabV3Member("mobilenet_v3_large")
    assert load_backbone_weights(target, good) == len(source.backbone.state_dict())
    key = next(k for k, v in source.backbone.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    assert torch.equal(target.backbone.state_dict()[key], source.backbone.state_dict()[key])

    wrong = tmp_path / "resnet.pth"
    torch.save(DeepLabV3Member("resnet50").backbone.state_dict(), wrong)
    with pytest.raises(BackboneWeightsError, match=r"does not fit the mobilenet_v3_large backbone: \d+ missing"):
        load_backbone_weights(target, wrong)
    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    with pytest.raises(BackboneWeightsError, match="not a PyTorch state dict"):
        load_backbone_weights(target, junk)


def test_cost_counts_members_and_total_consistently():
    from bonemarrow.training.models.cost import preset_cost

    small = preset_cost("compact", tile=64, unet_features=4)
    members = small["unet"]["gflops"] + small["deeplabv3"]["gflops"]
    assert small["total"]["params_m"] == pytest.approx(small["unet"]["params_m"] + small["deeplabv3"]["params_m"])
    assert members <= small["total"]["gflops"] < 1.02 * members
    # Convolution cost grows with the pixel count.
    assert preset_cost("compact", tile=128, unet_features=4)["unet"]["gflops"] == pytest.approx(
        4 * small["unet"]["gflops"], rel=1e-6)
