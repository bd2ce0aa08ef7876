"""How the non-cellular structures look: adipocyte membranes, vessel walls, blood in lumens.

Each function returns a stain layer for its geometry; generator.py writes it
onto the canvas under the geometry's own mask and label.
"""
from __future__ import annotations

import cv2
import numpy as np

from .fat import FatGeometry
from .geometry import sample_in_mask
from .params import SlideParams
from .spaces import Spaces
from .stain import BLOOD, EOSIN, HAEM, layer
from .stamps import ellipse_pixels


def paint_fat(rng: np.random.Generator, fat: FatGeometry, p: SlideParams) -> np.ndarray:
    """Empty vacuoles (a trace of eosin at most) inside thin pink membranes with a few flat nuclei."""
    h, w = fat.mask.shape
    out = layer(h, w, eosin=rng.uniform(0.0, 0.025))
    membrane_e = rng.uniform(0.3, 0.65) * (0.7 + 0.4 * p.marrow_pinkness)
    grain = 1 + 0.2 * rng.standard_normal(int(fat.membrane.sum())).astype(np.float32)
    out[..., EOSIN][fat.membrane] = membrane_e * grain
    out[..., HAEM][fat.membrane] = 0.06
    sites = sample_in_mask(rng, fat.membrane, int(len(fat.diameters) * 0.12))
    if len(sites):
        n = len(sites)
        flat, _ = ellipse_pixels((h, w), sites[:, 0], sites[:, 1], np.full(n, 2.4 * p.scale),
                                 np.full(n, 0.8 * p.scale), rng.uniform(0, np.pi, n))
        flat = flat[fat.mask.reshape(-1)[flat]]
        hv = np.ascontiguousarray(out[..., HAEM])
        hv.reshape(-1)[flat] = 0.9
        out[..., HAEM] = hv
    return out


def _wall_nuclei(rng: np.random.Generator, wall: np.ndarray, lumen: np.ndarray, density: float,
                 s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened nuclei lying along a wall: positions and the wall's tangent direction."""
    sites = sample_in_mask(rng, wall, int(wall.sum() * density))
    if not len(sites):
        return sites, np.zeros(0), np.zeros(0)
    smooth = cv2.GaussianBlur(lumen.astype(np.float32), (0, 0), 3.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    xi = sites[:, 0].astype(int).clip(0, wall.shape[1] - 1)
    yi = sites[:, 1].astype(int).clip(0, wall.shape[0] - 1)
    tangent = np.arctan2(gy[yi, xi], gx[yi, xi]) + np.pi / 2
    return sites, tangent, np.full(len(sites), s)


def paint_vessels(rng: np.random.Generator, spaces: Spaces, p: SlideParams) -> tuple[np.ndarray, np.ndarray]:
    """The vessel layer and the mask of red-cell pixels inside lumens (labelled other)."""
    h, w = spaces.lumen.shape
    s = p.scale
    out = layer(h, w, eosin=rng.choice([0.0, rng.uniform(0.01, 0.045)], p=[0.7, 0.3]))  # plasma, sometimes
    e = np.ascontiguousarray(out[..., EOSIN])
    hh = np.ascontiguousarray(out[..., HAEM])
    b = np.ascontiguousarray(out[..., BLOOD])
    e[spaces.wall] = rng.uniform(0.35, 0.6) * (0.7 + 0.4 * p.marrow_pinkness)
    hh[spaces.wall] = 0.06
    e[spaces.thick_wall] = rng.uniform(0.6, 0.85)
    hh[spaces.thick_wall] = 0.1
    for mask, density, length in ((spaces.wall & ~spaces.thick_wall, 0.05, 2.6), (spaces.thick_wall, 0.025, 3.2)):
        sites, tangent, _ = _wall_nuclei(rng, mask, spaces.lumen, density, s)
        if len(sites):
            n = len(sites)
            flat, owner = ellipse_pixels((h, w), sites[:, 0], sites[:, 1], np.full(n, length * s),
                                         np.full(n, 0.75 * s), tangent)
            flat = flat[(spaces.wall | spaces.lumen).reshape(-1)[flat]]
            hh.reshape(-1)[flat] = 0.85
            e.reshape(-1)[flat] *= 0.5
    red = np.zeros((h, w), bool)
    if spaces.blood.any():
        area = int(spaces.blood.sum())
        sites = sample_in_mask(rng, spaces.blood, int(area / (2.6 * s) ** 2))
        n = len(sites)
        r = rng.uniform(1.15, 1.65, n) * s
        flat, owner = ellipse_pixels((h, w), sites[:, 0], sites[:, 1], r, r * rng.uniform(0.7, 1.0, n),
                                     rng.uniform(0, np.pi, n))
        keep = spaces.blood.reshape(-1)[flat]
        flat, owner = flat[keep], owner[keep]
        b.reshape(-1)[flat] = rng.uniform(0.55, 1.0, n).astype(np.float32)[owner]
        e.reshape(-1)[flat] = 0.1
        red.reshape(-1)[flat] = True
    out[..., EOSIN] = e
    out[..., HAEM] = hh
    out[..., BLOOD] = b
    return out, red
