"""Adipocytes as packed polygons: a Voronoi tessellation of jittered lattice seeds.

Fat cells press against each other, so in confluent fat they are polygons
sharing thin membranes; an adipocyte alone among haematopoietic cells is
rounder. Seeds sit on a jittered hexagonal lattice with some removed (which
lets neighbours grow larger), each seed becomes fat with probability
1 - local cellularity, and its Voronoi cell (bounded by the non-fat seeds too)
is its outline; isolated cells get rounded corners and shrink a little, and a
few collapse into wrinkled outlines with folds. The white inside and the
membrane are both labelled fat.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .geometry import chaikin, disc, draw_polylines, erode, fill_polygons, inside, jittered_hex, random_walk_curve
from .params import SlideParams
from .zones import Zones


@dataclass
class FatGeometry:
    mask: np.ndarray          # (H, W) bool: labelled fat
    membrane: np.ndarray      # (H, W) bool: the pink membranes (part of `mask`)
    diameters: list[float] = field(default_factory=list)

    @property
    def interior(self) -> np.ndarray:
        return self.mask & ~self.membrane


def _wrinkle(rng: np.random.Generator, poly: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """A partly collapsed adipocyte: one side caves in and the outline crumples a little."""
    rel = poly - centre
    theta = np.arctan2(rel[:, 1], rel[:, 0])
    dent = rng.uniform(0.15, 0.4) * np.clip(np.cos(theta - rng.uniform(0, 2 * np.pi)), 0, None) ** 3
    for k in rng.integers(4, 10, 2):
        dent += rng.uniform(0.01, 0.05) * (1 + np.sin(k * theta + rng.uniform(0, 6.3)))
    return centre + rel * (1 - dent)[:, None]


def _voronoi(seeds: np.ndarray, width: int, height: int) -> tuple[cv2.Subdiv2D, list[int]]:
    pad = 2 * max(width, height)
    subdiv = cv2.Subdiv2D((-pad, -pad, width + 2 * pad, height + 2 * pad))
    ids = [subdiv.insert((float(x), float(y))) for x, y in seeds.astype(np.float32)]
    return subdiv, ids


def _capped(facet, centre: np.ndarray, cap: float) -> np.ndarray:
    """A Voronoi cell with its far vertices pulled in: cells at the edge of the seed set are unbounded."""
    poly = np.asarray(facet, dtype=np.float64)
    rel = poly - centre
    reach = np.hypot(rel[:, 0], rel[:, 1])
    return centre + rel * (np.minimum(reach, cap) / np.maximum(reach, 1e-6))[:, None]


def _relax(seeds: np.ndarray, width: int, height: int, cap: float) -> np.ndarray:
    """One Lloyd step (each seed moves most of the way to its cell's centroid): fewer slivers and spikes."""
    subdiv, ids = _voronoi(seeds, width, height)
    facets, centres = subdiv.getVoronoiFacetList(ids)
    moved = seeds.copy()
    for k, (facet, centre) in enumerate(zip(facets, centres)):
        poly = _capped(facet, np.asarray(centre, dtype=np.float64), cap)
        x, y = poly[:, 0], poly[:, 1]
        cross = x * np.roll(y, -1) - np.roll(x, -1) * y
        area = cross.sum() / 2
        if abs(area) > 1e-6:
            cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * area)
            cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
            moved[k] = 0.3 * seeds[k] + 0.7 * np.array([cx, cy])
    return moved


def _roundish(poly: np.ndarray, keep: float) -> np.ndarray:
    """Pull an outline's radii towards their mean (keep=0: a circle, 1: unchanged)."""
    centroid = poly.mean(axis=0)
    rel = poly - centroid
    r = np.hypot(rel[:, 0], rel[:, 1])
    target = r.mean() + (r - r.mean()) * keep
    return centroid + rel * (target / np.maximum(r, 1e-6))[:, None]


def make_fat(rng: np.random.Generator, allowed: np.ndarray, zones: Zones, p: SlideParams) -> FatGeometry:
    h, w = allowed.shape
    s = p.scale
    ys, xs = np.nonzero(allowed)
    if len(xs) == 0:
        return FatGeometry(np.zeros((h, w), bool), np.zeros((h, w), bool))
    step = p.fat_diameter * s * 0.93
    seeds = jittered_hex(rng, xs.min(), ys.min(), xs.max(), ys.max(), step, 0.33)
    # Thin the lattice unevenly: where more seeds go, neighbours grow into bigger cells.
    patches = rng.uniform(0, 1, (4, 4))
    px = np.clip(((seeds[:, 0] - xs.min()) / max(xs.max() - xs.min(), 1) * 3.999).astype(int), 0, 3)
    py = np.clip(((seeds[:, 1] - ys.min()) / max(ys.max() - ys.min(), 1) * 3.999).astype(int), 0, 3)
    seeds = seeds[rng.random(len(seeds)) > 0.08 + 0.25 * patches[py, px]]
    seeds = seeds[inside(seeds, allowed)]
    if len(seeds) > 3:
        seeds = _relax(seeds, w, h, step)
        seeds = seeds[inside(seeds, allowed)]
    if len(seeds) == 0:
        return FatGeometry(np.zeros((h, w), bool), np.zeros((h, w), bool))
    xi = seeds[:, 0].round().astype(int)
    yi = seeds[:, 1].round().astype(int)
    cell = zones.cellularity[yi, xi]
    is_fat = (rng.random(len(seeds)) < (1.0 - cell) ** 0.9) & ~zones.fibrosis[yi, xi] & ~zones.lymphoid[yi, xi]
    subdiv, ids = _voronoi(seeds, w, h)
    fat_ids = [ids[k] for k in np.flatnonzero(is_fat)]
    polys, diameters, folds = [], [], []
    if fat_ids:
        facets, centres = subdiv.getVoronoiFacetList(fat_ids)
        for facet, centre, local in zip(facets, centres, cell[is_fat]):
            centre = np.asarray(centre, dtype=np.float64)
            poly = _capped(facet, centre, step * rng.uniform(1.5, 1.9))
            # Corners round off; an adipocyte among haematopoietic cells is rounder and a little smaller.
            poly = chaikin(poly, 2)
            # The more cellular the neighbourhood, the rounder and smaller: cells press in between.
            crowd = float(np.clip((local - 0.3) / 0.6, 0.0, 1.0))
            poly = _roundish(chaikin(poly, 1), 1.0 - crowd * rng.uniform(0.3, 0.7))
            poly = centre + (poly - centre) * (1.0 - crowd * rng.uniform(0.05, 0.45))
            if rng.random() < 0.08:
                poly = _wrinkle(rng, poly, centre)
                radius = np.sqrt(cv2.contourArea(poly.astype(np.float32)) / np.pi)
                start = poly[rng.integers(0, len(poly))]
                heading = np.arctan2(*(centre - start)[::-1]) + rng.normal(0, 0.4)
                folds.append(random_walk_curve(rng, start, heading, radius * rng.uniform(0.4, 1.1), 2.0, 0.15))
            polys.append(poly)
            diameters.append(float(2 * np.sqrt(cv2.contourArea(poly.astype(np.float32)) / np.pi)))
    fill = fill_polygons((h, w), polys)
    # Tiny gaps where rounded corners meet are membrane too (a pink node), not marrow.
    closed = cv2.morphologyEx(fill, cv2.MORPH_CLOSE, disc(max(int(round(1.5 * s)), 1))) > 0
    fat = closed & allowed
    thickness = 1 if (s < 1.15 or rng.random() < 0.6) else 2
    outline = draw_polylines(np.zeros((h, w), np.uint8), polys, 1, thickness, closed=True)
    draw_polylines(outline, folds, 1, 1)
    membrane = fat & ((outline > 0) | (fill == 0) | ~erode(fat, thickness))
    return FatGeometry(mask=fat, membrane=membrane, diameters=diameters)
