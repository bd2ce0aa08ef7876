"""Does stain normalisation help the shipped model off its training distribution? A study, not a feature.

    python -m bonemarrow.benchmarks.stain_norm --checkpoint runs/x/best_density.pt \\
        --reference data/v2_train --holdout shifted=data/shifted_test -o benchmarks/results/stain_norm

Macenko's method (2009) in numpy: a scan's two stain vectors are the extreme
angles of its tissue pixels' optical densities in the plane of their two main
directions; each pixel's stain concentrations are then re-rendered with a
reference's stain vectors and concentration scale. The reference is the median
stain matrix and the median 99th-percentile concentrations over the reference
(training) images. Each hold-out image is segmented as it is and normalised,
with the same checkpoint through the runtime's tiler; the table says whether
normalisation moved Dice and density error. The runtime would only carry it
(with the reference in the model's metadata) if it measurably helped.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np

from bonemarrow.runtime.cli.common import CONTEXT_SETTINGS, fail, quiet_option, threads_option
from bonemarrow.runtime.json_io import write_json_atomic
from bonemarrow.runtime.labels import CLASSES

#: Optical density below which a pixel is glass, not stained tissue.
OD_THRESHOLD = 0.15
#: Percentile of angles taken as the extreme stain directions (robust to outliers).
ANGLE_PERCENTILE = 1.0


@dataclass(frozen=True)
class Stains:
    """A scan's stain matrix (rows: haematoxylin, eosin; unit OD vectors) and 99th-percentile concentrations."""

    matrix: np.ndarray  # (2, 3)
    max_concentration: np.ndarray  # (2,)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    return -np.log((rgb.astype(np.float32).reshape(-1, 3) + 1.0) / 256.0)


def estimate_stains(rgb: np.ndarray, max_pixels: int = 200_000, seed: int = 0) -> Stains | None:
    """Macenko stain vectors and concentration scale of an RGB image; None with too little tissue."""
    od = optical_density(rgb)
    od = od[(od > OD_THRESHOLD).all(axis=1)]
    if len(od) < 100:
        return None
    if len(od) > max_pixels:
        od = od[np.random.default_rng(seed).choice(len(od), max_pixels, replace=False)]
    _, vectors = np.linalg.eigh(np.cov(od.T))
    plane = vectors[:, 1:3]  # the two largest eigenvalues' vectors
    plane = plane * np.sign(plane.sum(axis=0, keepdims=True) + 1e-12)  # point into positive OD
    projected = od @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE])
    v1 = plane @ np.array([math.cos(low), math.sin(low)])
    v2 = plane @ np.array([math.cos(high), math.sin(high)])
    # Haematoxylin absorbs red more than eosin does: it is the vector with the larger red component.
    h, e = (v1, v2) if v1[0] > v2[0] else (v2, v1)
    matrix = np.stack([h / np.linalg.norm(h), e / np.linalg.norm(e)]).astype(np.float32)
    concentrations = np.linalg.lstsq(matrix.T, od.T, rcond=None)[0]
    return Stains(matrix, np.percentile(concentrations, 99, axis=1).astype(np.float32))


def reference_stains(images: list[np.ndarray]) -> Stains:
    """The median stain matrix and concentration scale over reference images."""
    found = [s for s in (estimate_stains(image) for image in images) if s is not None]
    if not found:
        raise ValueError("no reference image has enough stained tissue")
    matrix = np.median(np.stack([s.matrix for s in found]), axis=0)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return Stains(matrix.astype(np.float32), np.median(np.stack([s.max_concentration for s in found]), axis=0))


def normalise(rgb: np.ndarray, source: Stains | None, target: Stains) -> np.ndarray:
    """Re-render `rgb`'s stain concentrations with the target's stains; glass stays as it is."""
    if source is None:
        return rgb
    od = optical_density(rgb)
    concentrations = np.linalg.lstsq(source.matrix.T, od.T, rcond=None)[0]
    concentrations *= (target.max_concentration / np.maximum(source.max_concentration, 1e-6))[:, None]
    out = 256.0 * np.exp(-(target.matrix.T @ concentrations)).T - 1.0
    stained = (od > OD_THRESHOLD).any(axis=1)
    result = rgb.reshape(-1, 3).astype(np.float32)
    result[stained] = out[stained]
    return np.clip(result, 0, 255).reshape(rgb.shape).astype(np.uint8)


def _low_res(rgb: np.ndarray, factor: int = 4) -> np.ndarray:
    return cv2.resize(rgb, (max(1, rgb.shape[1] // factor), max(1, rgb.shape[0] // factor)),
                      interpolation=cv2.INTER_AREA)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--reference", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Training dataset whose train split gives the reference stains.")
@click.option("--reference-images", type=click.IntRange(1, 1000), default=40, show_default=True)
@click.option("--holdout", "holdouts", multiple=True, required=True, help="NAME=DATASET (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@threads_option()
@quiet_option()
def main(checkpoint, reference, reference_images, holdouts, output, threads, quiet):
    """Segment each hold-out image as it is and stain-normalised; compare Dice and density error."""
    import torch
    from tqdm import tqdm

    from bonemarrow.runtime.metrics import evaluate_pair
    from bonemarrow.training.checkpoint import load_checkpoint
    from bonemarrow.training.data import load_dataset
    from bonemarrow.training.dataset_io import items_in_split, load_item, read_manifest
    from bonemarrow.training.evaluate import summarise
    from bonemarrow.training.validate import member_probabilities

    if threads:
        torch.set_num_threads(threads)
    manifest = read_manifest(reference)
    items = items_in_split(manifest, "train")[:reference_images]
    target = reference_stains([_low_res(load_item(reference, item)[0]) for item in items])
    model, config = load_checkpoint(checkpoint)
    model.eval()
    weights = [float(w) for w in model.member_weights]
    report = {"checkpoint": str(checkpoint), "reference": str(reference),
              "target": {"matrix": target.matrix.tolist(), "max_concentration": target.max_concentration.tolist()},
              "holdouts": {}, "command": "python -m bonemarrow.benchmarks.stain_norm " + " ".join(sys.argv[1:])}
    for entry in holdouts:
        name, _, path = entry.partition("=")
        if not path:
            fail(f"--holdout {entry!r}: expected NAME=DATASET")
        samples = load_dataset(path, splits=("test",)).split("test")
        rows = {"as is": [], "normalised": []}
        for sample in tqdm(samples, desc=name, disable=quiet):
            variants = {"as is": sample.image,
                        "normalised": normalise(sample.image, estimate_stains(_low_res(sample.image)), target)}
            for variant, image in variants.items():
                probe = type(sample)(sample.name, image, sample.labels)
                probs = member_probabilities(model, probe, torch.device("cpu"), tile=int(config.get("tile", 512)),
                                             overlap=0.25, batch_size=4, amp_dtype=None)
                blended = sum(w * probs[m] for w, m in zip(weights, model.member_names))
                rows[variant].append(evaluate_pair(blended.argmax(axis=0).astype(np.uint8), sample.labels))
        report["holdouts"][name] = {variant: summarise(r) for variant, r in rows.items()}
    write_json_atomic(output.with_suffix(".json"), report)
    lines = ["| hold-out | input | tissue Dice | " + " | ".join(CLASSES) + " | density error |",
             "|---|---|---|" + "---|" * len(CLASSES) + "---|"]
    for name, variants in report["holdouts"].items():
        for variant, s in variants.items():
            lines.append(f"| {name} | {variant} | {s['tissue_dice_mean']:.3f} | "
                         + " | ".join(f"{s['dice'][c]:.3f}" for c in CLASSES)
                         + f" | {100 * s['density_error_mean']:.1f} % |")
    text = "\n".join(["# Stain normalisation study (Macenko, reference = training images)", "", *lines, "",
                      f"Command: `{report['command']}`", ""])
    output.with_suffix(".md").write_text(text)
    if not quiet:
        click.echo(text)


if __name__ == "__main__":
    main()
