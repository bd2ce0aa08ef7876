"""generate(seed, width, height): one hold-out biopsy, its exact labels and its parameters.

The order of painting is the order of precedence of the labels: marrow (other)
everywhere in the core, then fat, vessels, holes, bone, retraction clefts and
tears, each written with its own mask onto the same canvas as its label
(stain.Canvas). Only after that are amounts turned into light and the imaging
artefacts added, and those never move a label.

Every random stream is seeded by (seed, stream number), so one module's draws
never shift another's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bonemarrow.runtime.json_io import json_safe
from bonemarrow.runtime.labels import BACKGROUND, BONE, FAT, OTHER
from bonemarrow.runtime.metrics import class_counts, tissue_fractions

from . import colour, imaging
from .bone import make_bone
from .bone_paint import paint_bone, paint_canals
from .core import make_core
from .fat import make_fat
from .marrow import paint_marrow
from .params import draw_params
from .spaces import make_spaces
from .stain import Canvas
from .stamps import ellipse_pixels
from .tissue_paint import paint_fat, paint_vessels
from .zones import make_zones

GENERATOR = "holdout_synth"
VERSION = 1
MIN_WIDTH, MIN_HEIGHT = 96, 48
_STREAMS = ("params", "core", "bone", "zones", "spaces", "fat", "marrow", "bone_paint", "tissue_paint", "colour",
            "imaging")


@dataclass
class Scene:
    rgb: np.ndarray                      # (H, W, 3) uint8
    labels: np.ndarray                   # (H, W) uint8, 0..3
    params: dict
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # named geometry, for tests and inspection


def generate_scene(seed: int, width: int, height: int) -> Scene:
    """The image, its labels, its parameters and the geometry masks they were made from."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"image must be at least {MIN_WIDTH}x{MIN_HEIGHT}, got {width}x{height}")
    rngs = {name: np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, k]) for k, name in enumerate(_STREAMS)}
    p = draw_params(rngs["params"])
    core = make_core(rngs["core"], width, height, p)
    bone = make_bone(rngs["bone"], core, p)
    zones = make_zones(rngs["zones"], core.mask, bone.mask, p)
    spaces = make_spaces(rngs["spaces"], core.mask, bone.mask | bone.canals, zones.fibrosis, p)
    marrow = core.mask & ~bone.mask & ~bone.canals
    fat = make_fat(rngs["fat"], marrow & ~spaces.lumen & ~spaces.wall, zones, p)

    canvas = Canvas(height, width)
    canvas.put(marrow, OTHER, paint_marrow(rngs["marrow"], marrow, fat.interior | spaces.lumen, zones, bone.mask,
                                           bone.bays, p))
    tissue_rng = rngs["tissue_paint"]
    canvas.put(fat.mask, FAT, paint_fat(tissue_rng, fat, p))
    vessels, red_in_lumen = paint_vessels(tissue_rng, spaces, p)
    canvas.put(spaces.wall & core.mask, OTHER, vessels)  # a wall drawn at the core's edge stays on the core
    canvas.put(spaces.lumen & ~red_in_lumen, BACKGROUND, vessels)
    canvas.put(spaces.lumen & red_in_lumen & core.mask, OTHER, vessels)
    canvas.put(spaces.holes, BACKGROUND, (0.0, 0.0, 0.0))
    bone_rng = rngs["bone_paint"]
    canvas.put(bone.canals, OTHER, paint_canals(bone_rng, bone.canals, p))
    canvas.put(bone.mask, BONE, paint_bone(bone_rng, bone, p))
    canvas.put(bone.cleft, FAT, (0.0, 0.0, 0.0))
    canvas.put(spaces.tears, BACKGROUND, (0.0, 0.0, 0.0))
    labels = canvas.labels

    tissue = labels != BACKGROUND
    stain = colour.uneven_staining(rngs["colour"], canvas.stain, core.mask, p)
    light = colour.transmission(stain, p)
    img_rng = rngs["imaging"]
    imaging.coverslip(img_rng, light, tissue, p)
    light *= imaging.illumination(img_rng, (height, width), colour.glass_colour(p))
    light = imaging.focus(img_rng, light, p)
    rgb = imaging.sensor(img_rng, light, p)

    lacunae = np.zeros(height * width, bool)
    if len(bone.lacunae):
        lx, ly, rx, ry, ang = bone.lacunae.T
        lacunae[ellipse_pixels((height, width), lx, ly, rx, ry, ang)[0]] = True
    lacunae = lacunae.reshape(height, width) & (labels == BONE)
    counts = class_counts(labels)
    params = {
        "generator": GENERATOR, "version": VERSION, "seed": int(seed), "width": width, "height": height,
        **p.to_dict(),
        "core_pieces_drawn": core.pieces,
        "trabeculae": bone.trabeculae,
        "fat_cells": len(fat.diameters),
        "fat_diameter_median": round(float(np.median(fat.diameters)), 2) if fat.diameters else None,
        "lumens": len(spaces.lumen_diameters),
        "lumen_diameter_min": round(min(spaces.lumen_diameters), 2) if spaces.lumen_diameters else None,
        "fractions": json_safe({key: round(value, 5) for key, value in tissue_fractions(counts).items()}),
    }
    masks = {
        "core": core.mask,
        "fat_interior": fat.interior & (labels == FAT),
        "lumen": spaces.lumen & (labels == BACKGROUND),
        "lacunae": lacunae,
        "cleft": bone.cleft & (labels == FAT),
        "haemorrhage": zones.haemorrhage & (labels == OTHER),
        "fibrosis": zones.fibrosis & (labels == OTHER),
        "lymphoid": zones.lymphoid & (labels == OTHER),
        "tissue": tissue,
    }
    return Scene(rgb=rgb, labels=labels, params=params, masks=masks)


def generate(seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(rgb uint8 (H, W, 3), labels uint8 (H, W), params dict), a pure function of the arguments."""
    scene = generate_scene(seed, width, height)
    return scene.rgb, scene.labels, scene.params
