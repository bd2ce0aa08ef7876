"""Tissue fractions and segmentation metrics on label maps.

Bone density is the number the project exists for: bone pixels / tissue pixels,
where tissue is every class but background. Everything here works on class
counts, so a caller can sum counts over tiles, bands or images first.
"""
from __future__ import annotations

import math

import numpy as np

from bonemarrow.runtime.labels import BACKGROUND, BONE, CLASSES, FAT, NUM_CLASSES, OTHER


def class_counts(labels: np.ndarray) -> np.ndarray:
    """Pixels per class, as an int64 array of length NUM_CLASSES."""
    return np.bincount(np.asarray(labels).ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES].astype(np.int64)


def tissue_fractions(counts: np.ndarray) -> dict[str, float]:
    """bone_density, fat_fraction and other_fraction of tissue; NaN where there is no tissue."""
    counts = np.asarray(counts, dtype=np.int64)
    tissue = int(counts.sum() - counts[BACKGROUND])
    if tissue == 0:
        return {"bone_density": math.nan, "fat_fraction": math.nan, "other_fraction": math.nan}
    return {
        "bone_density": float(counts[BONE] / tissue),
        "fat_fraction": float(counts[FAT] / tissue),
        "other_fraction": float(counts[OTHER] / tissue),
    }


def bone_density(labels: np.ndarray) -> float:
    """Bone pixels / tissue pixels of one label map (NaN when there is no tissue)."""
    return tissue_fractions(class_counts(labels))["bone_density"]


def relative_density_error(predicted: float, true: float) -> float:
    """|predicted - true| / true, the original project's criterion; NaN when true density is 0 or NaN."""
    if not true or math.isnan(true) or math.isnan(predicted):
        return math.nan
    return abs(predicted - true) / true


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Counts [true class, predicted class] as an (NUM_CLASSES, NUM_CLASSES) int64 array."""
    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"shapes differ: predicted {predicted.shape}, truth {truth.shape}")
    flat = truth.astype(np.int64).ravel() * NUM_CLASSES + predicted.astype(np.int64).ravel()
    return np.bincount(flat, minlength=NUM_CLASSES**2)[: NUM_CLASSES**2].reshape(NUM_CLASSES, NUM_CLASSES)


def dice_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Dice per class, 2TP / (2TP + FP + FN); NaN for a class absent from both maps."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def dice_per_class(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice per class name for one pair of label maps."""
    dice = dice_from_confusion(confusion_matrix(predicted, truth))
    return {name: float(value) for name, value in zip(CLASSES, dice)}


def evaluate_pair(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """All per-image metrics: Dice per class, densities, relative density error, confusion matrix."""
    confusion = confusion_matrix(predicted, truth)
    dice = dice_from_confusion(confusion)
    pred_density = tissue_fractions(confusion.sum(axis=0))["bone_density"]
    true_density = tissue_fractions(confusion.sum(axis=1))["bone_density"]
    return {
        "dice": {name: float(value) for name, value in zip(CLASSES, dice)},
        "predicted_density": pred_density,
        "true_density": true_density,
        "relative_density_error": relative_density_error(pred_density, true_density),
        "confusion": confusion.tolist(),
    }
