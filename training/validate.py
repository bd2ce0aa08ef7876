"""Validation over whole images with the runtime's tiler, and the choice of member weights.

Each member runs once per validation image through
bonemarrow.runtime.tiling.sliding_window_inference (the code bm-run uses) with a
torch-backed `predict`. Tiled blending is linear in the probabilities, so the
ensemble's output for any member weights is the same weighted sum of the
members' blended probability maps; the weights are therefore chosen on a grid
without running the networks again. The weights maximise the mean Dice (ties:
lower mean relative bone density error); the trainer then keeps checkpoints by
the original project's criterion, the lowest mean density error.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from bonemarrow.runtime.labels import BACKGROUND, CLASSES, NUM_CLASSES
from bonemarrow.runtime.metrics import confusion_matrix, dice_from_confusion, relative_density_error, tissue_fractions
from bonemarrow.runtime.tiling import sliding_window_inference
from bonemarrow.training.data import Sample
from bonemarrow.training.losses import SegmentationLoss
from bonemarrow.training.models import Ensemble
from bonemarrow.training.models.registry import DEFAULT_TILE

ENSEMBLE = "ensemble"
ENSEMBLE_EQUAL = "ensemble_equal"


def make_predict(model: Ensemble, device: torch.device, member: str | None = None,
                 amp_dtype: torch.dtype | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A tiler `predict`: uint8 (B,3,h,w) numpy -> float32 (B,4,h,w) numpy probabilities."""

    def predict(batch: np.ndarray) -> np.ndarray:
        image = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                             enabled=amp_dtype is not None):
            probs = model(image) if member is None else model.member_probabilities(image, member)
        return probs.float().cpu().numpy()

    return predict


def weight_grid(members: int, steps: int = 10) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with components in multiples of 1/steps."""
    if members == 1:
        return [(1.0,)]
    grid = []
    for parts in itertools.product(range(steps + 1), repeat=members - 1):
        if sum(parts) <= steps:
            grid.append(tuple(p / steps for p in parts) + ((steps - sum(parts)) / steps,))
    return grid


@dataclass
class _Tally:
    """Confusion summed over images and per-image density errors, for one prediction."""

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64))
    density_errors: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def add(self, probs: np.ndarray, truth: np.ndarray) -> None:
        confusion = confusion_matrix(probs.argmax(axis=0), truth)
        self.confusion += confusion
        predicted = tissue_fractions(confusion.sum(axis=0))["bone_density"]
        true = tissue_fractions(confusion.sum(axis=1))["bone_density"]
        self.density_errors.append(relative_density_error(predicted, true))

    def summary(self) -> dict[str, float]:
        dice = dice_from_confusion(self.confusion)
        errors = [e for e in self.density_errors if not math.isnan(e)]
        out = {f"dice_{name}": float(d) for name, d in zip(CLASSES, dice)}
        out["mean_dice"] = float(np.nanmean(dice)) if not np.isnan(dice).all() else math.nan
        out["density_error"] = float(np.mean(errors)) if errors else math.nan
        if self.losses:
            out["loss"] = float(np.mean(self.losses))
        return out


def _weight_score(summary: dict[str, float]) -> tuple[float, float]:
    """Sort key for member weights: higher mean Dice first, then lower density error (NaN last).

    Not density error first: on a handful of validation images a mix can lower the
    density error by offsetting errors (an untrained member's bias cancelling a
    trained one's), which does not generalise; Dice rewards agreeing pixel by pixel.
    """
    error = summary["density_error"]
    dice = summary["mean_dice"]
    return (-(dice if not math.isnan(dice) else -math.inf), math.inf if math.isnan(error) else error)


@dataclass
class ValidationResult:
    metrics: dict[str, dict[str, float]]  # member name or "ensemble" -> metric -> value
    weights: tuple[float, ...]  # chosen member weights (sum 1)

    def flat(self) -> dict[str, float]:
        return {f"{who}/{key}": value for who, values in self.metrics.items() for key, value in values.items()}


def member_probabilities(model: Ensemble, sample: Sample, device: torch.device, *, tile: int, overlap: float,
                         batch_size: int, amp_dtype: torch.dtype | None) -> dict[str, np.ndarray]:
    """Each member's blended (4, H, W) probabilities for one whole image."""
    out = {}
    for name in model.member_names:
        result = sliding_window_inference(
            sample.image, make_predict(model, device, name, amp_dtype), tile=tile, overlap=overlap,
            batch_size=batch_size, divisor=model.divisor, return_probs=True, skip_background=True,
        )
        probs = result.probs
        uncovered = probs.sum(axis=0) < 0.5  # skipped glass: the tiler calls it background
        probs[BACKGROUND, uncovered] = 1.0
        out[name] = probs
    return out


def validate(model: Ensemble, samples: Sequence[Sample], device: torch.device, loss: SegmentationLoss, *,
             tile: int = DEFAULT_TILE, overlap: float = 0.25, batch_size: int = 4, amp_dtype: torch.dtype | None = None,
             grid_steps: int = 10, progress: Callable[[], None] | None = None) -> ValidationResult:
    """Per-member and ensemble metrics over whole images, with member weights chosen on them.

    Leaves the model in eval mode and its member weights unchanged (the caller decides).
    """
    model.eval()
    names = model.member_names
    candidates = weight_grid(len(names), grid_steps)
    tallies = {w: _Tally() for w in candidates}
    member_tallies = {name: _Tally() for name in names}
    for sample in samples:
        probs = member_probabilities(model, sample, device, tile=tile, overlap=overlap, batch_size=batch_size,
                                     amp_dtype=amp_dtype)
        truth = torch.from_numpy(sample.labels.astype(np.int64))[None]
        for name in names:
            member_tallies[name].add(probs[name], sample.labels)
            member_tallies[name].losses.append(float(loss.from_probs(torch.from_numpy(probs[name])[None], truth)))
        for w in candidates:  # the loss of every candidate too, so no maps are kept between images
            combined = sum(weight * probs[name] for weight, name in zip(w, names))
            tallies[w].add(combined, sample.labels)
            tallies[w].losses.append(float(loss.from_probs(torch.from_numpy(combined)[None], truth)))
        if progress is not None:
            progress()
    best = min(candidates, key=lambda w: _weight_score(tallies[w].summary()))
    metrics = {name: member_tallies[name].summary() for name in names}
    metrics[ENSEMBLE] = tallies[best].summary()
    equal = tuple(1.0 / len(names) for _ in names)
    if len(names) > 1 and equal in tallies:
        # Reported for honesty: the chosen weights are fitted on these same images, equal ones are not.
        metrics[ENSEMBLE_EQUAL] = tallies[equal].summary()
    return ValidationResult(metrics, best)
