"""The ensemble: preprocessing, every member's softmax, and their weighted average.

The model's input is the runtime contract's uint8 RGB image [B, 3, H, W]; the
conversion to float and the normalisation happen inside, so the exported ONNX
graph, the runtime and training validation all feed the same thing. The member
weights live in a buffer: they are chosen on validation data after training,
saved with the state dict, and baked into the export.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from bonemarrow.training.models.registry import IMAGENET_MEAN, IMAGENET_STD


class Ensemble(nn.Module):
    """uint8 image [B,3,H,W] -> class probabilities float32 [B,C,H,W]."""

    def __init__(
        self,
        members: Mapping[str, nn.Module],
        weights: Sequence[float] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleDict(members)
        self.member_names: tuple[str, ...] = tuple(members)
        self.divisor = math.lcm(*(int(getattr(m, "divisor", 1)) for m in members.values()))
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("member_weights", torch.empty(len(members), dtype=torch.float32))
        self.set_member_weights(weights if weights is not None else [1.0] * len(members))

    def set_member_weights(self, weights: Sequence[float]) -> None:
        """Store non-negative weights, normalised to sum to 1 (so the output stays a distribution)."""
        values = [float(w) for w in weights]
        if len(values) != len(self.member_names):
            raise ValueError(f"need {len(self.member_names)} member weights, got {values}")
        if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
            raise ValueError(f"member weights must be non-negative with a positive sum, got {values}")
        total = sum(values)
        with torch.no_grad():
            self.member_weights.copy_(torch.tensor([w / total for w in values], dtype=torch.float32))

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0..255 float) RGB -> normalised float32."""
        return (image.float() - self.pixel_mean) / self.pixel_std

    def _check_size(self, image: torch.Tensor) -> None:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return  # shapes are symbolic in an export; the runtime pads to the divisor instead
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch [B,3,H,W], got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height % self.divisor or width % self.divisor:
            raise ValueError(f"height and width must be multiples of {self.divisor}, got {height}x{width}")

    def member_logits(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's logits for a uint8 batch (training uses these for the per-member losses)."""
        self._check_size(image)
        x = self.preprocess(image)
        return {name: member(x) for name, member in self.members.items()}

    def combine(self, logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted average of the members' softmax probabilities."""
        probs = None
        for index, name in enumerate(self.member_names):
            p = torch.softmax(logits[name].float(), dim=1) * self.member_weights[index]
            probs = p if probs is None else probs + p
        return probs

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.combine(self.member_logits(image))

    def member_probabilities(self, image: torch.Tensor, name: str) -> torch.Tensor:
        """One member's softmax output, for per-member validation."""
        self._check_size(image)
        return torch.softmax(self.members[name](self.preprocess(image)).float(), dim=1)
