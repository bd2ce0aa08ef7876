"""Bone geometry: trabeculae, cortex, resorption bays, lamellar packets, lacunae and clefts.

Trabeculae are drawn as a sparse set of edges of a Delaunay graph over nodes
spread through the core, each edge a bowed centre line swept by a disc of
varying radius: in a 2-D section that gives branching bars, plates, free ends
and isolated cross-cut islands. Edges are added until the wanted bone fraction
is reached. Painting (bone texture) lives in paint_bone.py; this module only
decides where bone is and the structures the texture follows.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .core import Core
from .geometry import (bezier, dart_throw, dilate, distance_inside, erode, fill_polygons, rag_profile,
                       radial_polygon, sample_in_mask)
from .params import SlideParams


@dataclass
class BoneGeometry:
    mask: np.ndarray                 # (H, W) bool: labelled bone
    cortex: np.ndarray               # (H, W) bool: the cortical part of `mask`
    canals: np.ndarray               # (H, W) bool: Haversian canal contents (labelled other)
    cleft: np.ndarray                # (H, W) bool: retraction cleft beside bone (labelled fat)
    packets: np.ndarray              # (N, 3) circles (x, y, r): lamellar packets / osteons, oldest first
    bays: np.ndarray                 # (M, 3) resorption bays (x, y, r) on the surface, for osteoclasts
    lacunae: np.ndarray              # (K, 5) osteocyte lacunae (x, y, rx, ry, angle)
    trabeculae: int = 0


def _delaunay_edges(nodes: np.ndarray, width: int, height: int) -> list[tuple[int, int]]:
    """Edges of the Delaunay triangulation between `nodes` (indices), without the outer virtual ones."""
    pad = 4 * max(width, height)
    subdiv = cv2.Subdiv2D((-pad, -pad, width + 2 * pad, height + 2 * pad))
    key = {}
    for index, (x, y) in enumerate(nodes.astype(np.float32)):
        subdiv.insert((float(x), float(y)))
        key[(float(x), float(y))] = index
    edges = set()
    for x1, y1, x2, y2 in subdiv.getEdgeList():
        i = key.get((float(np.float32(x1)), float(np.float32(y1))))
        j = key.get((float(np.float32(x2)), float(np.float32(y2))))
        if i is not None and j is not None and i != j:
            edges.add((min(i, j), max(i, j)))
    return sorted(edges)


def _sweep(canvas: np.ndarray, path: np.ndarray, radii: np.ndarray) -> None:
    """Draw a bar: filled discs along the path, close enough to merge into one smooth outline."""
    for (x, y), r in zip(path, radii):
        cv2.circle(canvas, (int(round(x * 16)), int(round(y * 16))), int(round(max(r, 1.0) * 16)), 1, -1,
                   lineType=cv2.LINE_8, shift=4)


def _trabecula(rng: np.random.Generator, canvas: np.ndarray, a: np.ndarray, b: np.ndarray, thickness: float) -> None:
    length = float(np.hypot(*(b - a)))
    direction = (b - a) / max(length, 1e-6)
    normal = np.array([-direction[1], direction[0]])
    control = (a + b) / 2 + normal * length * rng.uniform(-0.3, 0.3)
    # Free ends: a trabecula that leaves the section plane stops short and thins.
    t0 = rng.uniform(0.0, 0.35) if rng.random() < 0.3 else 0.0
    t1 = 1.0 - (rng.uniform(0.0, 0.35) if rng.random() < 0.3 else 0.0)
    n = max(int(length / max(thickness * 0.12, 1.5)), 8)
    full = bezier(a, control, b, n)
    u = np.linspace(0, 1, n)
    # A gentle S-shaped wander on top of the bow.
    full = full + normal * (length * rng.uniform(0.0, 0.08) * np.sin(2 * np.pi * u * rng.uniform(0.8, 1.6)
                                                                        + rng.uniform(0, 6.3)))[:, None]
    path = full[int(t0 * n):max(int(t1 * n), int(t0 * n) + 2)]
    s = np.linspace(0, 1, len(path))
    radii = thickness / 2 * (1 + 0.22 * np.sin(2 * np.pi * s * rng.uniform(0.5, 2.5) + rng.uniform(0, 6.3))
                             + 0.1 * np.sin(2 * np.pi * s * rng.uniform(3, 8) + rng.uniform(0, 6.3))
                             + 0.05 * np.sin(2 * np.pi * s * rng.uniform(10, 25) + rng.uniform(0, 6.3)))
    if t0 > 0:
        radii *= np.clip(0.45 + s * 3, 0, 1)
    if t1 < 1:
        radii *= np.clip(0.45 + (1 - s) * 3, 0, 1)
    _sweep(canvas, path, radii)


def _trabecular_network(rng: np.random.Generator, core: Core, p: SlideParams) -> tuple[np.ndarray, int]:
    h, w = core.mask.shape
    s = p.scale
    bone = np.zeros((h, w), np.uint8)
    core_area = int(core.mask.sum())
    target = p.bone_target * core_area
    if target <= 0:
        return bone > 0, 0
    spacing = p.trabecular_spacing * s * rng.uniform(0.85, 1.15)
    region = dilate(core.mask, spacing * 0.25)
    candidates = sample_in_mask(rng, region, int(60 * region.sum() / spacing**2) + 20)
    nodes = dart_throw(candidates, spacing * 0.75)
    if len(nodes) < 2:
        return bone > 0, 0
    edges = _delaunay_edges(nodes, w, h)
    lengths = np.array([np.hypot(*(nodes[i] - nodes[j])) for i, j in edges])
    edges = [e for e, length in zip(edges, lengths) if length < 2.2 * spacing]
    rng.shuffle(edges)
    thick_factor = 0.7 + 1.3 * p.bone_target
    degree = np.zeros(len(nodes), int)
    widest = np.zeros(len(nodes))
    drawn = 0
    # Grow from drawn nodes more often than starting new bars: sections show connected branches.
    pending = list(edges)
    while pending:
        connected = [k for k, (i, j) in enumerate(pending) if degree[i] or degree[j]]
        pick = connected[0] if connected and rng.random() < 0.65 else 0
        i, j = pending.pop(pick)
        t = p.trabecular_thickness * s * thick_factor * float(np.exp(rng.normal(0, 0.42)))
        if rng.random() < 0.1:
            t *= 1.5  # a plate cut across
        t = float(np.clip(t, 28 * s, 200 * s))
        _trabecula(rng, bone, nodes[i], nodes[j], t)
        for node in (i, j):
            degree[node] += 1
            widest[node] = max(widest[node], t)
        drawn += 1
        if drawn % 2 == 0 and np.count_nonzero(bone[core.mask]) >= target:
            break
    # Junctions widen where bars meet.
    for node in np.flatnonzero(degree >= 2):
        x, y = nodes[node]
        cv2.circle(bone, (int(x), int(y)), int(widest[node] * rng.uniform(0.42, 0.55)), 1, -1)
    # Bars cut across: isolated islands.
    islands = rng.poisson(max(core_area / spacing**2 * 0.25, 0.5))
    for cx, cy in sample_in_mask(rng, core.mask, islands):
        r = p.trabecular_thickness * s * rng.uniform(0.4, 1.1)
        poly = radial_polygon(rng, cx, cy, r, aspect=rng.uniform(1.0, 4.0), angle=rng.uniform(0, np.pi),
                              roughness=0.12)
        fill_polygons(bone.shape, [poly], 1, out=bone)
    return (bone > 0) & core.mask, drawn


def _cortex(rng: np.random.Generator, core: Core, p: SlideParams) -> tuple[np.ndarray, np.ndarray, list]:
    """Cortical bone: a dense block at one end of the core and/or a plate along one long edge.

    Returns the cortex mask (canals removed), the canal mask, and osteon circles.
    """
    h, w = core.mask.shape
    s = p.scale
    cortex = np.zeros((h, w), bool)
    yy = np.arange(h, dtype=np.float64)[:, None]
    xx = np.arange(w, dtype=np.float64)[None, :]
    if p.cortex_end:
        length = (core.x_end - core.x_start) * rng.uniform(0.06, 0.18)
        inner = rag_profile(rng, h, 25 * s, 160) + length
        if rng.random() < 0.5:
            cortex |= xx < core.x_start + inner[:, None]
        else:
            cortex |= xx > core.x_end - inner[:, None]
    if p.cortex_plate:
        thick = rng.uniform(50, 180) * s + rag_profile(rng, w, 20 * s, 200)
        a, b = sorted(rng.uniform(0, 1, 2))
        span = (xx >= core.x_start + a * (core.x_end - core.x_start) * 0.5) & (
            xx <= core.x_start + (0.5 + b * 0.5) * (core.x_end - core.x_start))
        edge = core.top if rng.random() < 0.5 else core.bottom
        with np.errstate(invalid="ignore"):
            band = np.abs(yy - edge[None, :]) < thick[None, :]
        cortex |= band & span
    cortex &= core.mask
    canals = np.zeros((h, w), bool)
    osteons: list[tuple[float, float, float]] = []
    if cortex.any():
        # Cavities near the marrow side (cancellisation), then Haversian canals with their osteons.
        area = cortex.sum()
        holes = sample_in_mask(rng, cortex, int(area / (150 * s) ** 2) + 1)
        cut = fill_polygons((h, w), [radial_polygon(rng, x, y, rng.uniform(15, 60) * s, aspect=rng.uniform(1, 3),
                                                    angle=rng.uniform(0, np.pi), roughness=0.2) for x, y in holes])
        cortex &= cut == 0
        sites = sample_in_mask(rng, erode(cortex, 8 * s), int(area / (70 * s) ** 2))
        canal_polys = []
        for x, y in sites:
            rc = rng.uniform(3, 9) * s
            canal_polys.append(radial_polygon(rng, x, y, rc, aspect=rng.uniform(1, 1.8), angle=rng.uniform(0, 3.2),
                                              roughness=0.1, points=16))
            osteons.append((x, y, rc * rng.uniform(3.5, 6.0)))
        canals = (fill_polygons((h, w), canal_polys) > 0) & cortex
        cortex &= ~canals
    return cortex, canals, osteons


def _contour_points(mask: np.ndarray, step: int) -> list[np.ndarray]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return [c[::step, 0, :].astype(np.float64) for c in contours if len(c) > 2 * step]


def _roughen(rng: np.random.Generator, bone: np.ndarray, p: SlideParams) -> np.ndarray:
    """Small bumps and dents along the surface, so outlines are not the smooth sweep of a disc."""
    s = p.scale
    add = np.zeros(bone.shape, np.uint8)
    cut = np.zeros(bone.shape, np.uint8)
    for points in _contour_points(bone, 3):
        count = rng.poisson(len(points) * 3 / (45 * s))
        for k in rng.integers(0, len(points), count):
            x, y = points[k]
            r = int(round(rng.uniform(1.5, 5) * s))
            cv2.circle(add if rng.random() < 0.5 else cut, (int(x), int(y)), max(r, 1), 1, -1)
    return (bone | (add > 0)) & ~((cut > 0) & ~(add > 0))


def _scallop(rng: np.random.Generator, bone: np.ndarray, p: SlideParams) -> tuple[np.ndarray, np.ndarray]:
    """Bite resorption bays (Howship's lacunae) out of stretches of the bone surface."""
    s = p.scale
    bays = []
    if p.scallop_rate <= 0:
        return bone, np.zeros((0, 3))
    for points in _contour_points(bone, 2):
        perimeter = 2 * len(points)
        runs = rng.binomial(max(int(perimeter / (60 * s)), 0), p.scallop_rate)
        for _ in range(runs):
            k = int(rng.integers(0, len(points)))
            r = rng.uniform(5, 16) * s
            for _ in range(int(rng.integers(1, 6))):
                bays.append((*points[k % len(points)], r))
                k += max(int(1.7 * r / 2), 1)
                r = float(np.clip(r * rng.uniform(0.8, 1.25), 4 * s, 20 * s))
    bays_arr = np.array(bays, dtype=np.float64).reshape(-1, 3)
    if len(bays_arr):
        bite = np.zeros(bone.shape, np.uint8)
        for x, y, r in bays_arr:
            cv2.circle(bite, (int(round(x)), int(round(y))), int(round(r)), 1, -1)
        bone = bone & (bite == 0)
    return bone, bays_arr


def _packets(rng: np.random.Generator, bone: np.ndarray, osteons: list, p: SlideParams) -> np.ndarray:
    """Lamellar packets: hemi-osteons centred just outside the surface (old refilled bays), then osteons."""
    s = p.scale
    packets = []
    for points in _contour_points(bone, 3):
        count = rng.poisson(len(points) * 3 / (80 * s))
        for k in rng.integers(0, len(points), count):
            x, y = points[k]
            r = rng.uniform(18, 60) * s
            # Push the centre off the surface, away from the bone's interior.
            ahead = points[(k + 2) % len(points)] - points[k - 2]
            normal = np.array([ahead[1], -ahead[0]]) / max(np.hypot(*ahead), 1e-6)
            px = int(np.clip(x + normal[0] * 3, 0, bone.shape[1] - 1))
            py = int(np.clip(y + normal[1] * 3, 0, bone.shape[0] - 1))
            if bone[py, px]:
                normal = -normal
            off = r * rng.uniform(0.45, 0.85)
            packets.append((x + normal[0] * off, y + normal[1] * off, r))
    packets.extend(osteons)
    return np.array(packets, dtype=np.float64).reshape(-1, 3)


def _lacunae(rng: np.random.Generator, bone: np.ndarray, p: SlideParams) -> np.ndarray:
    s = p.scale
    depth = distance_inside(bone)
    spacing = rng.uniform(17, 28) * s
    room = depth > max(2.5 * s, 2.0)
    count = int(room.sum() / spacing**2)
    points = sample_in_mask(rng, room, count)
    if not len(points):
        return np.zeros((0, 5))
    # Lacunae lie along the lamellae, which run along the surface: across the depth gradient.
    gx = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=5)
    xi, yi = points[:, 0].astype(int).clip(0, bone.shape[1] - 1), points[:, 1].astype(int).clip(0, bone.shape[0] - 1)
    along = np.arctan2(gy[yi, xi], gx[yi, xi]) + np.pi / 2 + rng.normal(0, 0.25, len(points))
    rx = rng.uniform(1.2, 2.2, len(points)) * s
    ry = rx * rng.uniform(0.4, 0.65, len(points))
    return np.stack([points[:, 0], points[:, 1], rx, ry, along], axis=1)


def _cleft(rng: np.random.Generator, bone: np.ndarray, core_mask: np.ndarray, p: SlideParams) -> np.ndarray:
    """Retraction clefts: a thin white gap along part of a trabecula's surface (labelled fat)."""
    s = p.scale
    cleft = np.zeros(bone.shape, np.uint8)
    if p.cleft_rate <= 0:
        return cleft > 0
    for points in _contour_points(bone, 2):
        if len(points) < 20 or rng.random() > p.cleft_rate:
            continue
        n = len(points)
        run = int(n * rng.uniform(0.15, 0.6))
        start = int(rng.integers(0, n))
        width = rng.uniform(1.5, 6.0) * s
        t = np.linspace(0, np.pi, run)
        for k, phase in zip(range(start, start + run), t):
            x, y = points[k % n]
            r = max(width * (0.35 + 0.65 * np.sin(phase)), 1.0)
            cv2.circle(cleft, (int(round(x)), int(round(y))), int(round(r)), 1, -1)
    return (cleft > 0) & ~bone & core_mask


def make_bone(rng: np.random.Generator, core: Core, p: SlideParams) -> BoneGeometry:
    trabecular, drawn = _trabecular_network(rng, core, p)
    cortex, canals, osteons = _cortex(rng, core, p)
    bone = _roughen(rng, trabecular | cortex, p) & core.mask
    bone, bays = _scallop(rng, bone, p)
    bone &= ~canals
    # Specks of bone smaller than a few cells are dropped: they read as debris, not bone.
    count, comp, stats, _ = cv2.connectedComponentsWithStats(bone.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < (12 * p.scale) ** 2)
    small = small[small > 0]
    if len(small):
        bone &= ~np.isin(comp, small)
    packets = _packets(rng, bone, osteons, p)
    lacunae = _lacunae(rng, bone, p)
    cleft = _cleft(rng, bone, core.mask, p)
    return BoneGeometry(mask=bone, cortex=cortex & bone, canals=canals, cleft=cleft, packets=packets, bays=bays,
                        lacunae=lacunae, trabeculae=drawn)
