"""Per-slide parameters: every random choice that shapes a whole image, drawn once from the seed.

Keeping them in one flat dataclass means the manifest can record exactly what
each hold-out image was made of, and the documentation's parameter ranges can
be read off this one file. Sizes are in pixels at the project's nominal scale
(about 2 micrometres per pixel) and are multiplied by `scale` when used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SlideParams:
    # Magnification: multiplies every size (cells, fat, bone thickness, vessels...).
    scale: float
    # Core strip.
    core_width: float          # strip thickness as a fraction of image height
    core_pieces: int           # 1-3 fragments
    core_bend: float           # bow of the strip, fraction of image height (signed)
    core_roughness: float      # amplitude of the ragged edges, px
    # Bone.
    bone_target: float         # wanted bone area / core area (the trabecular part)
    trabecular_spacing: float  # distance between trabecular nodes, px
    trabecular_thickness: float  # median trabecular thickness, px
    scallop_rate: float        # fraction of bone surface with resorption bays
    cortex_end: bool           # a block of cortical bone at one end of the core
    cortex_plate: bool         # a cortical plate along one long edge
    cleft_rate: float          # fraction of trabeculae with a retraction cleft
    # Marrow.
    cellularity: float         # 0 = all fat, 1 = packed
    fat_diameter: float        # mean adipocyte diameter, px
    marrow_pinkness: float     # eosin of the cytoplasm and stroma; high = as pink as bone
    rbc_density: float         # scattered red cells per 100 px^2 of marrow
    megakaryocyte_density: float  # relative to normal
    erythroid_fraction: float  # share of erythroid islands among haematopoietic cells
    # Rates of rare structures per 10^6 px^2 of core at scale 1 (so small images get few or none).
    haemorrhage_rate: float
    fibrosis_rate: float
    lymphoid_rate: float       # lymphoid aggregates (nodules of small dark lymphocytes)
    # White spaces that are background.
    vessel_density: float      # lumens per (250 px)^2 of marrow at scale 1
    tear_rate: float
    hole_rate: float
    # Stain and imaging.
    h_strength: float          # haematoxylin amount (faded < 1 < over-stained)
    e_strength: float          # eosin amount
    h_hue: float               # 0 blue haematoxylin .. 1 purple
    e_hue: float               # 0 magenta-pink eosin .. 1 orange-red
    glass_level: float         # brightness of empty glass, 0..1
    warmth: float              # -1 cold (bluish) .. +1 warm (yellow) white balance
    gamma: float               # camera tone curve
    blur_base: float           # sharpest focus, Gaussian sigma px
    blur_range: float          # extra blur in the worst-focused part
    noise: float               # sensor noise, 8-bit units
    jpeg_quality: int          # 0 = no JPEG round trip
    dust: float                # specks per 10^6 px of image
    pen_mark: bool
    bubbles: int
    chatter: float             # amplitude of section-thickness stripes (0 = none)

    def to_dict(self) -> dict:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def count_for(rng: np.random.Generator, rate: float, area_px: float, scale: float) -> int:
    """How many of a rare structure a region gets: Poisson with `rate` per 10^6 px^2 of tissue at scale 1."""
    return int(rng.poisson(rate * area_px / (1e6 * scale**2)))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def draw_params(rng: np.random.Generator) -> SlideParams:
    """One slide's parameters; the ranges are the generator's specification."""
    # Cellularity: a broad spread that reaches both extremes often enough to test them.
    cellularity = float(np.clip(rng.choice([rng.uniform(0.03, 0.3), rng.uniform(0.2, 0.85), rng.uniform(0.8, 1.0)],
                                           p=[0.25, 0.5, 0.25]), 0.02, 1.0))
    return SlideParams(
        scale=_log_uniform(rng, 0.6, 1.7),
        core_width=float(rng.uniform(0.42, 0.8)),
        core_pieces=int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])),
        core_bend=float(rng.uniform(-0.12, 0.12)),
        core_roughness=float(rng.uniform(5.0, 24.0)),
        bone_target=float(rng.choice([rng.uniform(0.04, 0.12), rng.uniform(0.1, 0.28), rng.uniform(0.26, 0.4)],
                                     p=[0.25, 0.55, 0.2])),
        trabecular_spacing=float(rng.uniform(220.0, 420.0)),
        trabecular_thickness=_log_uniform(rng, 30.0, 90.0),
        scallop_rate=float(rng.uniform(0.0, 0.35)),
        cortex_end=bool(rng.random() < 0.35),
        cortex_plate=bool(rng.random() < 0.15),
        cleft_rate=float(rng.choice([0.0, rng.uniform(0.1, 0.7)], p=[0.45, 0.55])),
        cellularity=cellularity,
        fat_diameter=float(rng.uniform(30.0, 62.0)),
        marrow_pinkness=float(rng.uniform(0.25, 1.0)),
        rbc_density=_log_uniform(rng, 0.15, 2.5),
        megakaryocyte_density=_log_uniform(rng, 0.4, 2.5),
        erythroid_fraction=float(rng.uniform(0.12, 0.4)),
        haemorrhage_rate=float(rng.choice([0.0, rng.uniform(0.2, 1.5)], p=[0.35, 0.65])),
        fibrosis_rate=float(rng.choice([0.0, rng.uniform(0.2, 1.0)], p=[0.55, 0.45])),
        lymphoid_rate=float(rng.choice([0.0, rng.uniform(0.2, 1.2)], p=[0.6, 0.4])),
        vessel_density=float(rng.uniform(0.4, 1.4)),
        tear_rate=float(rng.choice([0.0, rng.uniform(0.2, 2.0)], p=[0.3, 0.7])),
        hole_rate=float(rng.choice([0.0, rng.uniform(0.2, 1.5)], p=[0.4, 0.6])),
        h_strength=_log_uniform(rng, 0.55, 1.6),
        e_strength=_log_uniform(rng, 0.55, 1.45),
        h_hue=float(rng.uniform(0.0, 1.0)),
        e_hue=float(rng.beta(1.2, 2.0)),
        glass_level=float(rng.uniform(0.82, 0.98)),
        warmth=float(rng.uniform(-1.0, 1.0)),
        gamma=float(rng.uniform(0.85, 1.15)),
        blur_base=float(rng.uniform(0.3, 0.9)),
        blur_range=float(rng.choice([rng.uniform(0.0, 0.6), rng.uniform(0.6, 2.2)], p=[0.6, 0.4])),
        noise=float(rng.uniform(1.0, 4.5)),
        jpeg_quality=int(rng.choice([0, int(rng.integers(70, 96))], p=[0.35, 0.65])),
        dust=float(rng.uniform(0.0, 12.0)),
        pen_mark=bool(rng.random() < 0.12),
        bubbles=int(rng.choice([0, 1, 2], p=[0.75, 0.18, 0.07])),
        chatter=float(rng.choice([0.0, rng.uniform(0.03, 0.08)], p=[0.75, 0.25])),
    )
