"""Haematopoietic marrow as explicit cells: nuclei, cytoplasm, red cells, megakaryocytes.

Cells sit on a jittered lattice about one cell apart (packed) and are thinned
where the marrow is loose. Types follow what a pathologist expects to see at
this magnification: granulocytic cells (paler, often indented or segmented
nuclei, pink granular cytoplasm, more of them along the trabeculae), erythroid
islands (tight clusters of very dark round nuclei with a pale rim), small dark
lymphocytes, plasma cells with an eccentric nucleus, eosinophils with
orange-red cytoplasm, scattered and streaming red cells, and large
megakaryocytes with a lobulated nucleus. Haemorrhage is a sheet of red cells;
fibrosis is pale wavy fibres with spindle nuclei; osteoclasts sit in
resorption bays. Everything is written as stain amounts (stain.py); the whole
layer is labelled other.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import (distance_inside, draw_polylines, fill_polygons, inside, jittered_hex, radial_polygon,
                       random_walk_curve, sample_in_mask)
from .params import SlideParams
from .stain import BLOOD, EOSIN, HAEM, layer
from .stamps import ellipse_pixels
from .zones import Zones

MYELOID, ERYTHROID, LYMPHOCYTE, PLASMA, EOSINOPHIL, STROMAL = range(6)


def _set(channel: np.ndarray, flat: np.ndarray, owner: np.ndarray, values: np.ndarray) -> None:
    channel.reshape(-1)[flat] = values[owner]


def _scale(channel: np.ndarray, flat: np.ndarray, factor: float) -> None:
    view = channel.reshape(-1)
    view[flat] *= factor


class _Painter:
    """The marrow layer under construction: three channel views and the random source."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], p: SlideParams, ground_e: np.ndarray):
        self.rng = rng
        self.shape = shape
        self.p = p
        self.stain = layer(*shape)
        self.stain[..., EOSIN] = ground_e
        self.stain[..., HAEM] = 0.05
        self.h = np.ascontiguousarray(self.stain[..., HAEM])
        self.e = np.ascontiguousarray(self.stain[..., EOSIN])
        self.b = np.ascontiguousarray(self.stain[..., BLOOD])

    def finish(self) -> np.ndarray:
        self.stain[..., HAEM] = self.h
        self.stain[..., EOSIN] = self.e
        self.stain[..., BLOOD] = self.b
        return self.stain

    def nuclei(self, xs, ys, rx, ry, angle, haem, texture: float = 0.15) -> None:
        flat, owner = ellipse_pixels(self.shape, xs, ys, rx, ry, angle)
        grain = 1.0 + texture * self.rng.standard_normal(len(flat)).astype(np.float32)
        self.h.reshape(-1)[flat] = haem[owner] * grain
        _scale(self.e, flat, 0.45)
        self.b.reshape(-1)[flat] = 0.0

    def bodies(self, xs, ys, rx, ry, angle, eosin, haem) -> None:
        flat, owner = ellipse_pixels(self.shape, xs, ys, rx, ry, angle)
        grain = 1.0 + 0.12 * self.rng.standard_normal(len(flat)).astype(np.float32)
        self.e.reshape(-1)[flat] = eosin[owner] * grain
        self.h.reshape(-1)[flat] = haem[owner]
        self.b.reshape(-1)[flat] = 0.0

    def red_cells(self, points: np.ndarray, amount: tuple[float, float], keep: np.ndarray | None = None) -> None:
        rng, s = self.rng, self.p.scale
        n = len(points)
        if n == 0:
            return
        r = rng.uniform(1.15, 1.7, n) * s
        flat, owner = ellipse_pixels(self.shape, points[:, 0], points[:, 1], r, r * rng.uniform(0.75, 1.0, n),
                                     rng.uniform(0, np.pi, n))
        if keep is not None:
            ok = keep.reshape(-1)[flat]
            flat, owner = flat[ok], owner[ok]
        self.b.reshape(-1)[flat] = rng.uniform(*amount, n).astype(np.float32)[owner]
        _scale(self.e, flat, 0.35)
        _scale(self.h, flat, 0.25)


def _cells(rng: np.random.Generator, region: np.ndarray, zones: Zones, bone_distance: np.ndarray,
           p: SlideParams) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (N, 2) and types (N,) over the region."""
    s = p.scale
    ys, xs = np.nonzero(region)
    step = 5.4 * s
    points = jittered_hex(rng, xs.min(), ys.min(), xs.max(), ys.max(), step, 0.3)
    points = points[inside(points, region)]
    xi, yi = points[:, 0].round().astype(int), points[:, 1].round().astype(int)
    cell = zones.cellularity[yi, xi]
    keep = 0.2 + 0.8 * cell
    keep = np.where(zones.haemorrhage[yi, xi], 0.08, keep)
    keep = np.where(zones.fibrosis[yi, xi], 0.1, keep)
    keep = np.where(zones.lymphoid[yi, xi], 1.0, keep)
    chosen = rng.random(len(points)) < keep
    points, xi, yi = points[chosen], xi[chosen], yi[chosen]
    n = len(points)
    kinds = rng.choice([MYELOID, LYMPHOCYTE, PLASMA, EOSINOPHIL, STROMAL], n, p=[0.72, 0.12, 0.05, 0.05, 0.06])
    # Granulopoiesis hugs the trabeculae.
    near_bone = bone_distance[yi, xi] < 22 * s
    kinds[near_bone & (rng.random(n) < 0.7)] = MYELOID
    # Erythroid islands: clusters away from the bone surface.
    islands = np.zeros(region.shape, np.uint8)
    radius = rng.uniform(7, 15, max(n, 1)) * s
    per_island = max(np.pi * np.mean(radius) ** 2 / (step**2 * 0.866), 1.0)
    count = int(n * p.erythroid_fraction / per_island)
    far = ~near_bone
    if count and far.any():
        centres = points[far][rng.integers(0, far.sum(), count)]
        for (cx, cy), r in zip(centres, radius):
            cv2.ellipse(islands, (int(cx), int(cy)), (int(r * rng.uniform(0.8, 1.3)), int(r)),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
    in_island = islands[yi, xi] > 0
    kinds[in_island & (rng.random(n) < 0.85)] = ERYTHROID
    # Lymphoid aggregates: small lymphocytes with scant cytoplasm, packed tighter than the rest.
    nodule = zones.lymphoid[yi, xi]
    kinds[nodule & (rng.random(n) < 0.9)] = LYMPHOCYTE
    if zones.lymphoid.any():
        ly, lx = np.nonzero(zones.lymphoid)
        extra = jittered_hex(rng, lx.min(), ly.min(), lx.max(), ly.max(), 4.2 * s, 0.3)
        extra = extra[inside(extra, zones.lymphoid & region)]
        points = np.concatenate([points, extra])
        kinds = np.concatenate([kinds, np.full(len(extra), LYMPHOCYTE)])
    return points, kinds


def _paint_cells(paint: _Painter, points: np.ndarray, kinds: np.ndarray) -> None:
    rng, s, p = paint.rng, paint.p.scale, paint.p
    n = len(points)
    pink = p.marrow_pinkness
    body_r = np.select([kinds == MYELOID, kinds == ERYTHROID, kinds == LYMPHOCYTE, kinds == PLASMA,
                        kinds == EOSINOPHIL], [3.2, 2.4, 2.2, 3.0, 3.3], 3.6) * s * rng.uniform(0.85, 1.15, n)
    body_e = np.select([kinds == MYELOID, kinds == ERYTHROID, kinds == LYMPHOCYTE, kinds == PLASMA,
                        kinds == EOSINOPHIL], [0.4 + 0.45 * pink, 0.1 + 0.15 * pink, 0.12, 0.25, 1.05],
                       0.2 + 0.2 * pink) * rng.uniform(0.8, 1.2, n)
    body_h = np.select([kinds == PLASMA, kinds == ERYTHROID], [0.3, 0.06], 0.04) * rng.uniform(0.7, 1.3, n)
    aspect = rng.uniform(1.0, 1.35, n)
    angle = rng.uniform(0, np.pi, n)
    paint.bodies(points[:, 0], points[:, 1], body_r * aspect, body_r / aspect, angle,
                 body_e.astype(np.float32), body_h.astype(np.float32))
    eos = kinds == EOSINOPHIL
    if eos.any():
        # Eosinophil granules are refractile orange-red: some haemoglobin-like absorber.
        flat, _ = ellipse_pixels(paint.shape, points[eos, 0], points[eos, 1], body_r[eos] * 0.9)
        paint.b.reshape(-1)[flat] = 0.35
    # Nuclei: a centre offset (eccentric in plasma cells), size and darkness per type.
    nuc_r = np.select([kinds == MYELOID, kinds == ERYTHROID, kinds == LYMPHOCYTE, kinds == PLASMA,
                       kinds == EOSINOPHIL], [2.0, 1.4, 1.7, 1.5, 1.2], 1.6) * s * rng.uniform(0.85, 1.2, n)
    nuc_h = np.select([kinds == MYELOID, kinds == ERYTHROID, kinds == LYMPHOCYTE, kinds == PLASMA,
                       kinds == EOSINOPHIL], [0.75, 1.55, 1.3, 1.15, 1.0], 0.6) * rng.uniform(0.85, 1.15, n)
    offset = np.where(kinds == PLASMA, 1.2, np.where(kinds == MYELOID, 0.5, 0.2)) * s
    theta = rng.uniform(0, 2 * np.pi, n)
    cx = points[:, 0] + offset * np.cos(theta)
    cy = points[:, 1] + offset * np.sin(theta)
    # Mature granulocytes: two or three small lobes instead of one nucleus.
    lobed = ((kinds == MYELOID) & (rng.random(n) < 0.35)) | eos
    single = ~lobed
    stromal = kinds == STROMAL
    n_aspect = np.where(stromal, rng.uniform(1.6, 2.6, n), rng.uniform(1.0, 1.3, n))
    paint.nuclei(cx[single], cy[single], (nuc_r * n_aspect)[single], (nuc_r / n_aspect)[single], angle[single],
                 nuc_h[single].astype(np.float32))
    idx = np.flatnonzero(lobed)
    if len(idx):
        lobes = rng.integers(2, 4, len(idx))
        owner = np.repeat(idx, lobes)
        k = np.concatenate([np.arange(m) - (m - 1) / 2 for m in lobes])
        # Lobes on an arc round the cell centre: a horseshoe or a segmented nucleus.
        spread = np.repeat(rng.uniform(0, 2 * np.pi, len(idx)), lobes) + k * rng.uniform(0.9, 1.4, len(owner))
        lx = points[owner, 0] + 1.1 * s * np.cos(spread)
        ly = points[owner, 1] + 1.1 * s * np.sin(spread)
        lr = rng.uniform(0.85, 1.15, len(owner)) * s
        paint.nuclei(lx, ly, lr, lr * 0.85, spread, (nuc_h[owner] * 1.15).astype(np.float32))


def _megakaryocytes(paint: _Painter, region: np.ndarray, zones: Zones) -> None:
    rng, p, s = paint.rng, paint.p, paint.p.scale
    weight = float(zones.cellularity[region].sum())
    count = int(rng.poisson(p.megakaryocyte_density * weight / (145 * s) ** 2))
    candidates = sample_in_mask(rng, region, count * 3)
    if not len(candidates):
        return
    xi, yi = candidates[:, 0].astype(int), candidates[:, 1].astype(int)
    accept = rng.random(len(candidates)) < zones.cellularity[yi, xi] ** 1.5
    h, w = paint.shape
    for cx, cy in candidates[accept][:count]:
        radius = rng.uniform(6.5, 19) * s
        reach = int(radius * 1.6 + 4)
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, w)
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, h)
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        body = radial_polygon(rng, cx - x0, cy - y0, radius, aspect=rng.uniform(1.0, 1.5),
                              angle=rng.uniform(0, np.pi), roughness=0.18, points=32)
        cyto = fill_polygons((y1 - y0, x1 - x0), [body]) > 0
        local_e = paint.e[y0:y1, x0:x1]
        local_h = paint.h[y0:y1, x0:x1]
        local_b = paint.b[y0:y1, x0:x1]
        if rng.random() < 0.3:
            # Retraction artefact: a clear halo round the cell.
            halo = cv2.dilate(cyto.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(int(s), 1)) > 0
            local_e[halo] *= 0.15
            local_h[halo] *= 0.15
            local_b[halo] = 0
        grain = 1.0 + 0.12 * rng.standard_normal(int(cyto.sum())).astype(np.float32)
        local_e[cyto] = rng.uniform(0.7, 1.0) * (0.6 + 0.5 * p.marrow_pinkness) * grain
        local_h[cyto] = 0.12
        local_b[cyto] = 0.0
        nucleus = np.zeros_like(cyto, np.uint8)
        lobes = int(rng.integers(3, 9))
        for _ in range(lobes):
            ang = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0.0, 0.32) * radius
            axes = (max(int(radius * rng.uniform(0.22, 0.42)), 1), max(int(radius * rng.uniform(0.15, 0.3)), 1))
            cv2.ellipse(nucleus, (int(cx - x0 + d * np.cos(ang)), int(cy - y0 + d * np.sin(ang))), axes,
                        float(np.degrees(ang)), 0, 360, 1, -1)
        nuc = (nucleus > 0) & cyto
        local_h[nuc] = rng.uniform(0.95, 1.35) * (1 + 0.15 * rng.standard_normal(int(nuc.sum())))
        local_e[nuc] *= 0.5


def _osteoclasts(paint: _Painter, region: np.ndarray, bays: np.ndarray) -> None:
    rng, s = paint.rng, paint.p.scale
    for x, y, r in bays:
        if rng.random() > 0.3:
            continue
        n = int(rng.integers(3, 8))
        xs = x + rng.normal(0, r * 0.3, n)
        ys = y + rng.normal(0, r * 0.3, n)
        ok = inside(np.stack([xs, ys], 1), region)
        if ok.sum() < 2:
            continue
        cx, cy = xs[ok].mean(), ys[ok].mean()
        flat, _ = ellipse_pixels(paint.shape, np.array([cx]), np.array([cy]), np.array([r * 0.75]),
                                 np.array([r * 0.5]), np.array([rng.uniform(0, np.pi)]))
        flat = flat[region.reshape(-1)[flat]]
        paint.e.reshape(-1)[flat] = 0.95
        paint.h.reshape(-1)[flat] = 0.08
        paint.b.reshape(-1)[flat] = 0.0
        nr = np.full(ok.sum(), 1.3 * s)
        paint.nuclei(xs[ok], ys[ok], nr, nr * 0.85, np.zeros(ok.sum()), np.full(ok.sum(), 0.95, np.float32))


def _haemorrhage(paint: _Painter, zones: Zones) -> None:
    rng, s = paint.rng, paint.p.scale
    mask = zones.haemorrhage
    if not mask.any():
        return
    paint.b[mask] = rng.uniform(0.35, 0.6)
    paint.e[mask] *= 0.4
    paint.h[mask] *= 0.3
    area = int(mask.sum())
    points = sample_in_mask(rng, mask, int(area / (2.3 * s) ** 2))
    paint.red_cells(points, (0.6, 1.05), keep=mask)


def _fibrosis(paint: _Painter, zones: Zones) -> None:
    rng, s = paint.rng, paint.p.scale
    mask = zones.fibrosis
    if not mask.any():
        return
    paint.e[mask] = 0.3 + 0.15 * paint.p.marrow_pinkness
    paint.h[mask] = 0.05
    paint.b[mask] = 0.0
    fibres = np.zeros(paint.shape, np.uint8)
    nuclei = []
    for path, width in zones.fibrosis_paths:
        d = np.gradient(path, axis=0)
        normal = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
        for offset in np.arange(-width / 2, width / 2, rng.uniform(2.5, 4.0) * s):
            wave = offset + 1.5 * s * np.sin(np.arange(len(path)) * rng.uniform(0.08, 0.25) + rng.uniform(0, 6.3))
            line = path + normal * wave[:, None]
            draw_polylines(fibres, [line], 1, 1)
            for k in rng.integers(0, len(line), max(len(line) // int(max(12 * s, 4)), 1)):
                heading = np.arctan2(d[k, 1], d[k, 0])
                nuclei.append((line[k, 0], line[k, 1], heading))
    on = (fibres > 0) & mask
    paint.e[on] += 0.13
    if nuclei:
        arr = np.array(nuclei)
        n = len(arr)
        flat, owner = ellipse_pixels(paint.shape, arr[:, 0], arr[:, 1], rng.uniform(2.5, 4.5, n) * s,
                                     rng.uniform(0.6, 0.9, n) * s, arr[:, 2])
        ok = mask.reshape(-1)[flat]
        paint.h.reshape(-1)[flat[ok]] = rng.uniform(0.8, 1.2, n).astype(np.float32)[owner[ok]]


def paint_marrow(rng: np.random.Generator, region: np.ndarray, skip: np.ndarray, zones: Zones, bone: np.ndarray,
                 bays: np.ndarray, p: SlideParams) -> np.ndarray:
    """The marrow stain layer (H, W, 3) for `region`; cells are not placed where `skip` (fat, lumens) will cover."""
    shape = region.shape
    if not region.any():
        return layer(*shape)
    s = p.scale
    # Ground substance between cells: loose, oedematous and paler where the marrow is hypocellular.
    ground = (0.15 + 0.3 * p.marrow_pinkness) * (0.5 + 0.5 * zones.cellularity)
    paint = _Painter(rng, shape, p, ground.astype(np.float32))
    bone_distance = distance_inside(~bone)
    points, kinds = _cells(rng, region & ~skip, zones, bone_distance, p)
    _paint_cells(paint, points, kinds)
    # Scattered red cells, some streaming along collapsed capillaries.
    area = float(region.sum())
    n_rbc = int(p.rbc_density * area / 100)
    loose = sample_in_mask(rng, region, int(n_rbc * 0.85))
    chains = []
    for start in sample_in_mask(rng, region, max(int(n_rbc * 0.15 / 10), 1)):
        walk = random_walk_curve(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(12, 40) * s, 2.6 * s, 0.25)
        chains.append(walk)
    red = np.concatenate([loose, *chains]) if chains else loose
    paint.red_cells(red, (0.5, 0.95))
    _haemorrhage(paint, zones)
    _fibrosis(paint, zones)
    _megakaryocytes(paint, region & ~skip & ~zones.fibrosis, zones)
    _osteoclasts(paint, region, bays)
    # Fine granules between the cells.
    speck = rng.random(shape, dtype=np.float32)
    paint.e[speck < 0.04] += 0.12
    paint.h[speck > 0.997] += 0.3
    return paint.finish()
