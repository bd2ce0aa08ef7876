"""The parity gate: the exported graph must answer like the PyTorch model it came from.

Every precision is compared with the fp32 PyTorch model on the same inputs:
batches above 1 and non-square sizes (multiples of the divisor), on H&E-like
synthetic tiles, on uniform random pixels and, when a dataset is given, on
held-out dataset tiles. What is measured: the largest |probability difference|,
label (argmax) agreement, and the bone density difference (bone px / tissue px,
the number the project reports). The gated density is pooled over the gated
tiles, as the runtime pools the tiles of a scan; the worst single tile is
reported beside it (a 100x100 tile's density moves by 0.01 with a few dozen pixels).

Thresholds and why:
  fp32: max |dprob| <= 1e-4, labels >= 99.99 %. Same arithmetic up to operator
        fusion and summation order (~1e-6 in practice); anything near 1e-4 means
        a real difference in the graph (wrong constant, baked shape, lost op).
  fp16: labels >= 99.5 %, density difference <= 0.002. Half precision keeps ~3
        significant digits, so argmax flips only where two classes are within
        ~1e-3 of each other: class borders, a fraction of a percent of pixels.
        0.2 density points is ten times below the precision density is quoted at.
  int8: labels >= 97 %, density difference <= 0.01. 8-bit activations move
        borders by a pixel or so; on 256-px tiles that is a few percent of pixels.
        One density point is well inside the spread between human annotators
        (several points) and far below what separates normal from abnormal
        marrow, while a broken calibration shows up as tens of points.
        Uniform random pixels are reported but not gated for int8: they lie far
        outside the calibration range by construction.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bonemarrow.runtime.json_io import json_safe
from bonemarrow.runtime.labels import BACKGROUND, BONE
from bonemarrow.runtime.metrics import bone_density

Predict = Callable[[np.ndarray], np.ndarray]

# Requested sizes; each is rounded up to a multiple of the model's divisor.
DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((2, 128, 192), (3, 160, 96), (1, 224, 160))


@dataclass(frozen=True)
class Thresholds:
    """What a precision must reach; None means "reported, not gated"."""

    min_label_agreement: float
    max_abs_prob_diff: float | None = None
    max_density_diff: float | None = None
    gated_kinds: tuple[str, ...] = ("synthetic", "random", "dataset")


THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(min_label_agreement=0.9999, max_abs_prob_diff=1e-4),
    "fp16": Thresholds(min_label_agreement=0.995, max_density_diff=0.002),
    "int8": Thresholds(min_label_agreement=0.97, max_density_diff=0.01, gated_kinds=("synthetic", "dataset")),
}


@dataclass
class Sample:
    """One batch the gate runs: where it came from and the uint8 pixels [B,3,H,W]."""

    kind: str
    image: np.ndarray

    @property
    def shape(self) -> list[int]:
        return list(self.image.shape)


@dataclass
class SampleResult:
    kind: str
    shape: list[int]
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    label_agreement: float
    pixels: int
    density_reference: list[float]
    density_candidate: list[float]
    max_density_diff: float
    bone_tissue_reference: list[int]  # pooled counts: [bone px, tissue px]
    bone_tissue_candidate: list[int]


@dataclass
class GateReport:
    precision: str
    passed: bool
    thresholds: dict[str, Any]
    max_abs_prob_diff: float
    label_agreement: float
    density_diff: float  # pooled over the gated samples: what the gate judges
    worst_tile_density_diff: float  # reported, not gated
    failures: list[str]
    samples: list[SampleResult] = field(default_factory=list)
    provider: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def round_up(value: int, divisor: int) -> int:
    return max(divisor, -(-int(value) // divisor) * divisor)


def gate_shapes(divisor: int, shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES) -> list[tuple[int, int, int]]:
    """(batch, height, width) triples rounded up to the divisor (they stay non-square for the defaults)."""
    return [(int(b), round_up(h, divisor), round_up(w, divisor)) for b, h, w in shapes]


def synthetic_tiles(batch: int, height: int, width: int, seed: int) -> np.ndarray:
    """H&E-like uint8 tiles [B,3,H,W] from the project's synthetic biopsy generator.

    Realistic colours and structures matter: a trained model is confident on
    them, which is where a precision loss would show as changed labels and densities.
    """
    from bonemarrow.training.synth import generate_biopsy, image_rng

    tiles = [generate_biopsy(image_rng(seed, index), width, height)[0] for index in range(batch)]
    return np.ascontiguousarray(np.stack(tiles).transpose(0, 3, 1, 2))


def build_samples(
    divisor: int,
    *,
    shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES,
    seed: int = 0,
    extra: Sequence[Sample] = (),
) -> list[Sample]:
    """For each gate shape one batch of synthetic tiles and one of random pixels, plus `extra`."""
    rng = np.random.default_rng(seed)
    samples = []
    for index, (batch, height, width) in enumerate(gate_shapes(divisor, shapes)):
        samples.append(Sample("synthetic", synthetic_tiles(batch, height, width, seed + index)))
        samples.append(Sample("random", rng.integers(0, 256, (batch, 3, height, width), dtype=np.uint8)))
    samples.extend(extra)
    return samples


def _densities(labels: np.ndarray) -> list[float]:
    return [bone_density(item) for item in labels]


def _bone_tissue(labels: np.ndarray) -> list[int]:
    return [int((labels == BONE).sum()), int((labels != BACKGROUND).sum())]


def _pooled_density(counts: Sequence[Sequence[int]]) -> float:
    bone, tissue = (sum(c[i] for c in counts) for i in (0, 1))
    return bone / tissue if tissue else math.nan


def _density_diff(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0  # neither sees tissue: they agree
    if math.isnan(a) or math.isnan(b):
        return math.inf  # one sees tissue, the other none: a disagreement no threshold accepts
    return abs(a - b)


def compare(sample: Sample, reference: np.ndarray, candidate: np.ndarray) -> SampleResult:
    """Metrics of one batch: reference (PyTorch fp32) against candidate (onnxruntime) probabilities."""
    if candidate.shape != reference.shape:
        raise ValueError(f"output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    candidate = candidate.astype(np.float32, copy=False)
    diff = np.abs(candidate - reference)
    ref_labels = reference.argmax(axis=1)
    cand_labels = candidate.argmax(axis=1)
    ref_density = _densities(ref_labels)
    cand_density = _densities(cand_labels)
    density_diffs = [_density_diff(a, b) for a, b in zip(ref_density, cand_density)]
    finite = bool(np.isfinite(candidate).all())
    return SampleResult(
        kind=sample.kind,
        shape=sample.shape,
        max_abs_prob_diff=float(diff.max()) if finite else math.inf,
        mean_abs_prob_diff=float(diff.mean()) if finite else math.inf,
        label_agreement=float((ref_labels == cand_labels).mean()),
        pixels=int(ref_labels.size),
        density_reference=ref_density,
        density_candidate=cand_density,
        max_density_diff=max(density_diffs),
        bone_tissue_reference=_bone_tissue(ref_labels),
        bone_tissue_candidate=_bone_tissue(cand_labels),
    )


def evaluate(
    precision: str,
    samples: Sequence[Sample],
    references: Sequence[np.ndarray],
    predict: Predict,
    *,
    thresholds: Thresholds | None = None,
    provider: str | None = None,
    progress: Callable[[], None] | None = None,
) -> GateReport:
    """Run `predict` on every sample, compare with the references, and decide."""
    thresholds = thresholds or THRESHOLDS[precision]
    results = []
    for sample, reference in zip(samples, references):
        results.append(compare(sample, reference, predict(sample.image)))
        if progress:
            progress()
    gated = [r for r in results if r.kind in thresholds.gated_kinds]
    agreement = sum(r.label_agreement * r.pixels for r in gated) / max(1, sum(r.pixels for r in gated))
    max_prob = max((r.max_abs_prob_diff for r in gated), default=0.0)
    density_diff = _density_diff(
        _pooled_density([r.bone_tissue_reference for r in gated]),
        _pooled_density([r.bone_tissue_candidate for r in gated]),
    )
    worst_tile = max((r.max_density_diff for r in gated), default=0.0)
    failures = []
    if not gated:
        failures.append(f"no samples of the gated kinds {list(thresholds.gated_kinds)}")
    if agreement < thresholds.min_label_agreement:
        failures.append(f"label agreement {agreement:.6f} < {thresholds.min_label_agreement}")
    if thresholds.max_abs_prob_diff is not None and not max_prob <= thresholds.max_abs_prob_diff:
        failures.append(f"max |probability difference| {max_prob:.3g} > {thresholds.max_abs_prob_diff:g}")
    if thresholds.max_density_diff is not None and not density_diff <= thresholds.max_density_diff:
        failures.append(f"bone density difference {density_diff:.4g} > {thresholds.max_density_diff:g}")
    return GateReport(
        precision=precision,
        passed=not failures,
        thresholds=asdict(thresholds),
        max_abs_prob_diff=max_prob,
        label_agreement=agreement,
        density_diff=density_diff,
        worst_tile_density_diff=worst_tile,
        failures=failures,
        samples=results,
        provider=provider,
    )


def not_runnable(precision: str, reason: str) -> GateReport:
    """A gate that could not run (e.g. fp16 without a provider for it): a failure that says why."""
    thresholds = THRESHOLDS[precision]
    return GateReport(
        precision=precision,
        passed=False,
        thresholds=asdict(thresholds),
        max_abs_prob_diff=math.nan,
        label_agreement=math.nan,
        density_diff=math.nan,
        worst_tile_density_diff=math.nan,
        failures=[reason],
        note=reason,
    )
