"""The biopsy core: an elongated, ragged strip of tissue along the image's long side.

A trephine core is a cylinder cut lengthwise, so on the slide it is a strip
1-2 mm wide running along the scan, with torn, uneven edges, rounded or
oblique ends, a gentle bow, and sometimes broken into pieces by handling. The
strip is built column by column from a centre line and two ragged 1-D edge
profiles, so its top and bottom edges are known exactly (the cortical plate
follows one of them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import rag_profile
from .params import SlideParams


@dataclass
class Core:
    mask: np.ndarray        # (H, W) bool: tissue
    top: np.ndarray         # (W,) float: y of the upper edge per column (NaN where no tissue)
    bottom: np.ndarray      # (W,) float: y of the lower edge
    x_start: int
    x_end: int
    pieces: int


def _end_taper(x: np.ndarray, x0: float, x1: float, length: float, blunt: float) -> np.ndarray:
    """0..1 per column: how much of the half-width is left near the ends (rounded, blunt or pointed)."""
    d = np.minimum(x - x0, x1 - x)
    t = np.clip(d / max(length, 1.0), 0.0, 1.0)
    shape = np.sqrt(1.0 - (1.0 - t) ** 2)  # quarter-circle end
    return np.where(d < 0, 0.0, blunt + (1 - blunt) * shape)


def make_core(rng: np.random.Generator, width: int, height: int, p: SlideParams) -> Core:
    x = np.arange(width, dtype=np.float64)
    x0 = rng.uniform(0.01, 0.07) * width
    x1 = width - rng.uniform(0.01, 0.07) * width
    thickness = p.core_width * height
    rough = min(p.core_roughness * p.scale, 0.06 * thickness)
    margin = 0.03 * height + 1.0
    # Centre line: a bow plus a slow tilt, kept inside the image with the margin.
    u = (x - x0) / max(x1 - x0, 1.0)
    centre = height / 2 + p.core_bend * height * (4 * u * (1 - u) - 0.5) + rng.uniform(-0.06, 0.06) * height * (u - 0.5)
    half = thickness / 2 * (1 + 0.06 * np.sin(2 * np.pi * u * rng.uniform(0.5, 2.0) + rng.uniform(0, 6.3)))
    # Oblique ends: the top and bottom edges end at different columns.
    skew = rng.uniform(-0.25, 0.25) * thickness
    taper_len = thickness * rng.uniform(0.25, 0.6)
    blunt = rng.uniform(0.0, 0.7)
    top_half = half * _end_taper(x, x0 + max(skew, 0), x1 - max(-skew, 0), taper_len, blunt)
    bottom_half = half * _end_taper(x, x0 + max(-skew, 0), x1 - max(skew, 0), taper_len, blunt)
    wavelength = rng.uniform(120, 400)
    top = centre - top_half + rag_profile(rng, width, rough * 2, wavelength)
    bottom = centre + bottom_half + rag_profile(rng, width, rough * 2, wavelength)
    # Notches and bites torn out of the edges (about one per 600 px of edge), never cutting the strip through.
    bites = []
    for _ in range(2):
        bite = np.zeros(width)
        for _ in range(rng.poisson(max(x1 - x0, 0) / (600 * p.scale))):
            cx = rng.uniform(x0, x1)
            depth = min(rng.uniform(5, 45) * p.scale, 0.3 * thickness)
            span = rng.uniform(6, 60) * p.scale
            bite += depth * np.exp(-0.5 * ((x - cx) / span) ** 2)
        bites.append(bite)
    limit = np.clip(0.45 * (bottom - top), 0, None) / np.maximum(bites[0] + bites[1], 1e-6)
    top = top + bites[0] * np.minimum(limit, 1.0)
    bottom = bottom - bites[1] * np.minimum(limit, 1.0)
    # Fit inside the image: squeeze towards the centre line if too tall, then shift.
    live = (top_half > 0) & (bottom_half > 0)
    if live.any():
        extent = bottom[live].max() - top[live].min()
        room = height - 2 * margin
        if extent > room:
            k = room / extent
            top = centre + (top - centre) * k
            bottom = centre + (bottom - centre) * k
        shift = max(margin - top[live].min(), 0.0) + min((height - margin) - bottom[live].max(), 0.0)
        top = top + shift
        bottom = bottom + shift
    alive = (top_half > 0) & (bottom_half > 0) & (bottom - top > 4)
    top = np.where(alive, top, np.nan)
    bottom = np.where(alive, bottom, np.nan)
    yy = np.arange(height, dtype=np.float32)[:, None]
    with np.errstate(invalid="ignore"):
        mask = (yy >= top[None, :]) & (yy <= bottom[None, :])
    pieces = _break(rng, mask, x0, x1, p)
    return Core(mask=mask, top=top, bottom=bottom, x_start=int(x0), x_end=int(x1), pieces=pieces)


def _break(rng: np.random.Generator, mask: np.ndarray, x0: float, x1: float, p: SlideParams) -> int:
    """Split the strip in place into p.core_pieces fragments along jagged, oblique cracks."""
    height, width = mask.shape
    cuts = p.core_pieces - 1
    if cuts <= 0:
        return 1
    positions = np.sort(rng.uniform(0.22, 0.78, cuts))
    if cuts == 2 and positions[1] - positions[0] < 0.2:
        positions[1] = min(positions[0] + 0.25, 0.85)
    y = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float32)[None, :]
    for pos in positions:
        xc = x0 + pos * (x1 - x0)
        line = xc + np.tan(rng.uniform(-0.6, 0.6)) * (y - height / 2) + rag_profile(rng, height, 10 * p.scale, 80)
        gap = rng.uniform(6, 50) * p.scale
        lo = (line - gap / 2).astype(np.float32)[:, None]
        hi = (line + gap / 2).astype(np.float32)[:, None]
        mask &= ~((cols >= lo) & (cols <= hi))
        # The right-hand fragment settles a little up or down on the glass.
        dy = int(rng.integers(-12, 13) * p.scale)
        if dy:
            right = mask & (cols > hi)
            moved = np.roll(right, dy, axis=0)
            if dy > 0:
                moved[:dy] = False
            else:
                moved[dy:] = False
            mask &= ~right
            mask |= moved
    return p.core_pieces
