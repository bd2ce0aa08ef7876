"""Compare predicted label maps with ground truth, image by image and overall.

Pairs PRED_DIR/NAME_labels.png (bm-run's output) or PRED_DIR/NAME.png with
GT_DIR/NAME.png or GT_DIR/NAME_labels.png. Per image: Dice per class, predicted
and true bone density, relative density error, confusion matrix. Overall: means
of the per-image figures, and Dice of the pooled confusion matrix.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.labels import CLASSES, NUM_CLASSES
from bonemarrow.runtime.metrics import dice_from_confusion, evaluate_pair, relative_density_error, tissue_fractions

LABEL_SUFFIX = "_labels"


def _stem(path: Path) -> str:
    stem = path.stem
    return stem[: -len(LABEL_SUFFIX)] if stem.endswith(LABEL_SUFFIX) else stem


def label_files(folder: Path) -> dict[str, Path]:
    """NAME -> label PNG in a folder (NAME_labels.png wins over NAME.png)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.png")):
        if path.name.startswith(".") or path.stem.endswith("_overlay"):
            continue
        name = _stem(path)
        if name not in found or path.stem.endswith(LABEL_SUFFIX):
            found[name] = path
    return found


@dataclass
class Evaluation:
    images: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    unmatched_predictions: list[str] = field(default_factory=list)
    unmatched_truth: list[str] = field(default_factory=list)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64))

    def summary(self) -> dict:
        """Means over images (NaN-aware), pooled Dice and densities, and the pooled confusion matrix."""
        def mean(values):
            values = [v for v in values if v is not None and not math.isnan(v)]
            return float(np.mean(values)) if values else None

        pooled_pred = tissue_fractions(self.confusion.sum(axis=0))["bone_density"]
        pooled_true = tissue_fractions(self.confusion.sum(axis=1))["bone_density"]
        predicted = [r["predicted_density"] for r in self.images]
        true = [r["true_density"] for r in self.images]
        pairs = [(p, t) for p, t in zip(predicted, true) if p is not None and t is not None
                 and not math.isnan(p) and not math.isnan(t)]
        correlation = None
        if len(pairs) >= 2 and np.std([p for p, _ in pairs]) > 0 and np.std([t for _, t in pairs]) > 0:
            correlation = float(np.corrcoef(np.array(pairs).T)[0, 1])
        return {
            "images": len(self.images),
            "mean_dice": {c: mean([r["dice"][c] for r in self.images]) for c in CLASSES},
            "mean_relative_density_error": mean([r["relative_density_error"] for r in self.images]),
            "density_correlation": correlation,
            "pooled_dice": {c: _none(v) for c, v in zip(CLASSES, dice_from_confusion(self.confusion))},
            "pooled_predicted_density": _none(pooled_pred),
            "pooled_true_density": _none(pooled_true),
            "pooled_relative_density_error": _none(relative_density_error(pooled_pred, pooled_true)),
            "confusion": self.confusion.tolist(),
        }


def _none(value):
    value = float(value)
    return None if math.isnan(value) else value


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> Evaluation:
    predictions, truths = label_files(Path(pred_dir)), label_files(Path(gt_dir))
    result = Evaluation()
    result.unmatched_predictions = sorted(set(predictions) - set(truths))
    result.unmatched_truth = sorted(set(truths) - set(predictions))
    for name in sorted(set(predictions) & set(truths)):
        try:
            predicted = read_label_png(predictions[name])
            truth = read_label_png(truths[name])
            if predicted.shape != truth.shape:
                raise ValueError(f"{predictions[name]}: size {predicted.shape[::-1]} differs from the ground "
                                 f"truth's {truth.shape[::-1]} ({truths[name]})")
        except (ValueError, OSError) as error:
            result.failures.append({"name": name, "error": str(error).splitlines()[0]})
            continue
        metrics = evaluate_pair(predicted, truth)
        result.confusion += np.asarray(metrics["confusion"], dtype=np.int64)
        result.images.append({
            "name": name,
            "prediction": str(predictions[name]),
            "truth": str(truths[name]),
            "dice": {c: _none(v) for c, v in metrics["dice"].items()},
            "predicted_density": _none(metrics["predicted_density"]),
            "true_density": _none(metrics["true_density"]),
            "relative_density_error": _none(metrics["relative_density_error"]),
            "confusion": metrics["confusion"],
        })
    return result


def render_csv(evaluation: Evaluation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *(f"dice_{c}" for c in CLASSES), "predicted_density", "true_density",
                     "relative_density_error"])

    def fmt(value):
        return "" if value is None else f"{value:.6f}"

    for r in evaluation.images:
        writer.writerow([r["name"], *(fmt(r["dice"][c]) for c in CLASSES), fmt(r["predicted_density"]),
                         fmt(r["true_density"]), fmt(r["relative_density_error"])])
    summary = evaluation.summary()
    writer.writerow(["MEAN", *(fmt(summary["mean_dice"][c]) for c in CLASSES), "", "",
                     fmt(summary["mean_relative_density_error"])])
    return buffer.getvalue()
