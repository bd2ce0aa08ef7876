"""Segmentation loss: cross-entropy plus soft Dice per class.

Cross-entropy trains every pixel; soft Dice, averaged over classes, keeps a
rare class (bone is a few percent of tissue) from being drowned out, which is
what the bone density estimate depends on. Both take probabilities or logits so
the same loss serves a member (logits) and the averaged ensemble (probabilities).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bonemarrow.runtime.labels import NUM_CLASSES

_EPS = 1e-6


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over classes of soft Dice, computed over the whole batch.

    probs: [B, C, H, W] probabilities; target: [B, H, W] class indices.
    A class absent from both prediction and target scores ~1 (smoothing).
    """
    one_hot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    total = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + smooth) / (total + smooth)
    return 1 - dice.mean()


class SegmentationLoss:
    """CE (optionally class-weighted) + dice_weight x soft Dice."""

    def __init__(self, class_weights: Sequence[float] | None = None, dice_weight: float = 1.0) -> None:
        if class_weights is not None and len(class_weights) != NUM_CLASSES:
            raise ValueError(f"need {NUM_CLASSES} class weights, got {list(class_weights)}")
        self.class_weights = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.dice_weight = dice_weight

    def _weights(self, device: torch.device) -> torch.Tensor | None:
        return None if self.class_weights is None else self.class_weights.to(device)

    def from_logits(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        ce = F.cross_entropy(logits, target, weight=self._weights(logits.device))
        return ce + self.dice_weight * soft_dice_loss(torch.softmax(logits, dim=1), target)

    def from_probs(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = probs.float()
        nll = F.nll_loss(torch.log(probs.clamp_min(_EPS)), target, weight=self._weights(probs.device))
        return nll + self.dice_weight * soft_dice_loss(probs, target)


def parse_class_weights(text: str | None, pixel_counts: Sequence[int] | None = None) -> list[float] | None:
    """'1,2,1,1' -> weights; 'auto' -> inverse square-root frequency, normalised to mean 1; None/'' -> None."""
    if not text:
        return None
    if text.strip().lower() == "auto":
        if pixel_counts is None:
            raise ValueError("class weights 'auto' need the training pixel counts")
        counts = torch.tensor(list(pixel_counts), dtype=torch.float64).clamp_min(1)
        weights = (counts.sum() / counts).sqrt()
        weights = weights / weights.mean()
        return [round(float(w), 4) for w in weights]
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"class weights must be 'auto' or {NUM_CLASSES} comma-separated numbers, got {text!r}") from None
    if len(weights) != NUM_CLASSES or any(w < 0 for w in weights):
        raise ValueError(f"class weights must be {NUM_CLASSES} non-negative numbers, got {text!r}")
    return weights
