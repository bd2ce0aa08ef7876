"""PyTorch models: the U-Net and DeepLabv3 members and the ensemble that averages them."""
from bonemarrow.training.models.deeplab import (
    BACKBONES,
    BackboneWeightsError,
    DeepLabV3Member,
    load_backbone_weights,
)
from bonemarrow.training.models.ensemble import IMAGENET_MEAN, IMAGENET_STD, Ensemble
from bonemarrow.training.models.presets import MEMBER_KINDS, PRESETS, build_model, resolve_config
from bonemarrow.training.models.unet import UNet

__all__ = [
    "BACKBONES", "BackboneWeightsError", "DeepLabV3Member", "Ensemble", "IMAGENET_MEAN", "IMAGENET_STD",
    "MEMBER_KINDS", "PRESETS", "UNet", "build_model", "load_backbone_weights", "resolve_config",
]
