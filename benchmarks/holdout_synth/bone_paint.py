"""Bone's look: glassy eosinophilic matrix, faint lamellae, cement lines and osteocyte lacunae.

Lamellae run parallel to the surface they were laid on: inside a packet
(a refilled resorption bay or an osteon) that is the packet's circular
outline, elsewhere the trabecular surface. Each pixel gets a "lamellar depth"
from that, and the eosin is modulated by a faint wave of that depth. Cement
lines are the outlines of the packets (thin, darker, basophilic, a little
wavy); lacunae are small clear ellipses along the lamellae, about half with a
dark osteocyte nucleus. Lacunae stay labelled bone.
"""
from __future__ import annotations

import cv2
import numpy as np

from .bone import BoneGeometry
from .geometry import distance_inside, sample_in_mask
from .params import SlideParams
from .stain import EOSIN, HAEM, layer
from .stamps import ellipse_pixels


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def paint_bone(rng: np.random.Generator, bone: BoneGeometry, p: SlideParams) -> np.ndarray:
    h, w = bone.mask.shape
    s = p.scale
    out = layer(h, w)
    if not bone.mask.any():
        return out
    # Work inside the bone's bounding box only.
    y0, y1, x0, x1 = _bbox(bone.mask)
    mask = bone.mask[y0:y1, x0:x1]
    shape = mask.shape
    depth = distance_inside(mask)
    lamella = depth.copy()
    owner = np.zeros(shape, np.float32)
    for k, (cx, cy, r) in enumerate(bone.packets, start=1):
        cx, cy = cx - x0, cy - y0
        bx0, bx1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), shape[1])
        by0, by1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), shape[0])
        if bx1 <= bx0 or by1 <= by0:
            continue
        yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
        theta = np.arctan2(yy - cy, xx - cx)
        wobble = rng.uniform(0.3, 2.0) * s * np.sin(rng.integers(3, 9) * theta + rng.uniform(0, 6.3))
        dist = np.hypot(xx - cx, yy - cy) + wobble
        inside = (dist < r) & mask[by0:by1, bx0:bx1]
        lamella[by0:by1, bx0:bx1][inside] = (r - dist)[inside]
        owner[by0:by1, bx0:bx1][inside] = k
    # Cement lines: where the packet owner changes, inside the bone, not at the surface.
    kernel = np.ones((3, 3), np.uint8)
    cement = (cv2.erode(owner, kernel) != owner) & (depth > 1.5)
    base_e = rng.uniform(0.4, 0.95)
    # Bone takes up little haematoxylin: enough for a purple tinge, never enough to turn it blue.
    base_h = base_e * rng.uniform(0.02, 0.08)
    # Each trabecula (connected piece) and each packet stains a little differently.
    count, pieces = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    piece_factor = rng.uniform(0.88, 1.12, count).astype(np.float32)
    packet_factor = rng.uniform(0.95, 1.05, len(bone.packets) + 1).astype(np.float32)
    packet_amp = rng.uniform(0.2, 1.0, len(bone.packets) + 1).astype(np.float32)
    idx = owner.astype(np.int64)
    period = rng.uniform(3.2, 6.0) * s
    amp = rng.uniform(0.02, 0.07) * packet_amp[idx]
    e = base_e * piece_factor[pieces] * packet_factor[idx] * (1.0 + amp * np.cos(2 * np.pi * lamella / period))
    hh = base_h * piece_factor[pieces]
    if bone.cortex.any():
        e[bone.cortex[y0:y1, x0:x1]] *= 1.06
    # A crisper, denser rim at the surface.
    e[mask & (depth <= 1.5)] *= 1.12
    hh[cement] += rng.uniform(0.1, 0.25)
    # Subtle grain of decalcified matrix.
    e *= 1.0 + 0.035 * rng.standard_normal(shape, dtype=np.float32)
    e, hh = np.ascontiguousarray(e, np.float32), np.ascontiguousarray(hh, np.float32)
    if len(bone.lacunae):
        lx, ly, rx, ry, ang = bone.lacunae.T
        flat, _ = ellipse_pixels(shape, lx - x0, ly - y0, rx, ry, ang)
        flat = flat[mask.reshape(-1)[flat]]
        clear = rng.uniform(0.35, 0.7)
        e.reshape(-1)[flat] *= clear
        hh.reshape(-1)[flat] *= clear
        with_cell = rng.random(len(lx)) < 0.7
        n = int(with_cell.sum())
        nucleus, _ = ellipse_pixels(shape, lx[with_cell] - x0, ly[with_cell] - y0, np.full(n, 0.8 * s),
                                    np.full(n, 0.5 * s), ang[with_cell])
        hh.reshape(-1)[nucleus[mask.reshape(-1)[nucleus]]] = rng.uniform(0.7, 1.2)
    out[y0:y1, x0:x1, EOSIN] = e
    out[y0:y1, x0:x1, HAEM] = hh
    return out


def paint_canals(rng: np.random.Generator, canals: np.ndarray, p: SlideParams) -> np.ndarray:
    """Haversian canal contents: loose pale connective tissue with a capillary's cells (class other)."""
    h, w = canals.shape
    out = layer(h, w, haem=0.04, eosin=0.16)
    if canals.any():
        s = p.scale
        sites = sample_in_mask(rng, canals, int(canals.sum() / (45 * s * s)) + 1)
        n = len(sites)
        flat, _ = ellipse_pixels((h, w), sites[:, 0], sites[:, 1], rng.uniform(1.0, 2.2, n) * s,
                                 rng.uniform(0.6, 1.2, n) * s, rng.uniform(0, np.pi, n))
        flat = flat[canals.reshape(-1)[flat]]
        haem = np.ascontiguousarray(out[..., HAEM])
        haem.reshape(-1)[flat] = 0.95
        out[..., HAEM] = haem
    return out
