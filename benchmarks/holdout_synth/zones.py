"""Where the marrow is cellular or fatty, and where it bleeds or scars.

Real marrow is patchy: haematopoietic islands and fatty lakes of a few hundred
micrometres, often a cellular (or, in older marrow, fatty) rim along the
trabeculae. Local cellularity is a sum of a few explicitly placed broad
Gaussian "islands" around the slide's overall cellularity, plus a
paratrabecular term, evaluated on a coarse grid. Haemorrhage patches,
lymphoid aggregates and fibrotic streaks are explicit polygons and swept bands.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import draw_polylines, fill_polygons, radial_polygon, random_walk_curve, sample_in_mask
from .params import SlideParams, count_for

COARSE = 8


@dataclass
class Zones:
    cellularity: np.ndarray                       # (H, W) float32 in 0..1, 1 = packed
    haemorrhage: np.ndarray                       # (H, W) bool
    fibrosis: np.ndarray                          # (H, W) bool
    lymphoid: np.ndarray                          # (H, W) bool: lymphoid aggregates (packed lymphocytes)
    fibrosis_paths: list[tuple[np.ndarray, float]]  # centre line and width of each streak


def _cellularity(rng: np.random.Generator, core: np.ndarray, bone: np.ndarray, p: SlideParams) -> np.ndarray:
    h, w = core.shape
    ch, cw = (h + COARSE - 1) // COARSE, (w + COARSE - 1) // COARSE
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32) * COARSE
    field = np.full((ch, cw), p.cellularity, np.float32)
    area = float(core.sum())
    count = max(int(area / (320 * p.scale) ** 2 * rng.uniform(0.5, 1.5)), 3)
    spread = 0.25 + 0.3 * (1 - abs(2 * p.cellularity - 1))  # extremes stay extreme
    for cx, cy in sample_in_mask(rng, core, count):
        sigma = rng.uniform(70, 260) * p.scale
        amp = rng.uniform(0.3, 1.0) * spread * (1 if rng.random() < 0.5 else -1)
        field += amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    small_bone = cv2.resize(bone.astype(np.uint8), (cw, ch), interpolation=cv2.INTER_AREA)
    rim = rng.uniform(-0.25, 0.3)
    if small_bone.any():
        dist = cv2.distanceTransform((small_bone == 0).astype(np.uint8), cv2.DIST_L2, 3) * COARSE
        field += rim * np.exp(-dist / (45 * p.scale))
    field = np.clip(field, 0.0, 1.0)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def make_zones(rng: np.random.Generator, core: np.ndarray, bone: np.ndarray, p: SlideParams) -> Zones:
    h, w = core.shape
    s = p.scale
    marrow = core & ~bone
    cellularity = _cellularity(rng, core, bone, p)
    polys = []
    area = float(marrow.sum())
    for cx, cy in sample_in_mask(rng, marrow, count_for(rng, p.haemorrhage_rate, area, s)):
        polys.append(radial_polygon(rng, cx, cy, rng.uniform(40, 180) * s, aspect=rng.uniform(1, 3),
                                    angle=rng.uniform(0, np.pi), roughness=0.35, points=56))
    haemorrhage = (fill_polygons((h, w), polys) > 0) & marrow
    band = np.zeros((h, w), np.uint8)
    paths = []
    for start in sample_in_mask(rng, marrow, count_for(rng, p.fibrosis_rate, area, s)):
        path = random_walk_curve(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(150, 650) * s, 4.0, 0.06)
        width = rng.uniform(14, 60) * s
        draw_polylines(band, [path], 1, int(width))
        paths.append((path, width))
    fibrosis = (band > 0) & marrow
    nodules = [radial_polygon(rng, cx, cy, rng.uniform(20, 60) * s, aspect=rng.uniform(1, 1.8),
                              angle=rng.uniform(0, np.pi), roughness=0.15)
               for cx, cy in sample_in_mask(rng, marrow, count_for(rng, p.lymphoid_rate, area, s))]
    lymphoid = (fill_polygons((h, w), nodules) > 0) & marrow & ~fibrosis
    return Zones(cellularity=cellularity, haemorrhage=haemorrhage, fibrosis=fibrosis, lymphoid=lymphoid,
                 fibrosis_paths=paths)
