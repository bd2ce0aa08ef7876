"""What lies on the glass and what the scanner adds: applied to the rendered RGB, labels untouched.

Dust, pen marks and air bubbles sit on the slide, not in the tissue, so the
annotator's labels do not change under them; scanner stitching seams, a
low-resolution look (an image downsampled and blown up again) and JPEG
compression change pixels only. A model must learn to look through all of them.
"""
from __future__ import annotations

import cv2
import numpy as np

from bonemarrow.training.synth.geometry import Geometry
from bonemarrow.training.synth.style import Style

#: Marker pen colours (RGB) as they scan: blue, green, black, red.
PEN_COLOURS = ((40, 60, 150), (40, 120, 70), (45, 45, 50), (150, 40, 50))


def stitching(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Scanner tiles: each field of view a slightly different brightness and tint, hard seams between."""
    height, width = rgb.shape[:2]
    field = int(rng.uniform(400, 1400))
    gains = np.ones((height, width, 3), np.float32)
    for y in range(0, height, field):
        for x in range(0, width, field):
            gains[y:y + field, x:x + field] = 1 + rng.normal(0, 0.008, 3)
    return np.clip(rgb * gains, 0, 255).astype(np.uint8)


def dust(rng: np.random.Generator, style: Style, rgb: np.ndarray) -> np.ndarray:
    """Dark specks and short fibres anywhere on the slide."""
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.poisson(8 * height * width / 1e6)) + 1):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        if rng.random() < 0.75:
            cv2.circle(mask, (x, y), max(1, int(style.length(rng.uniform(0.8, 3.5)))), 255, -1)
        else:
            angle = rng.uniform(0, np.pi)
            length = style.length(rng.uniform(10, 60))
            end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
            cv2.line(mask, (x, y), end, 255, 1)
    darkness = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 0.8) * rng.uniform(0.3, 0.7)
    return np.clip(rgb * (1 - darkness[..., None]), 0, 255).astype(np.uint8)


def pen_mark(rng: np.random.Generator, rgb: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A marker stroke or dot on the glass beside the core (never over tissue)."""
    height, width = rgb.shape[:2]
    glass = ~geometry.tissue
    ys, xs = np.nonzero(glass[::8, ::8])
    if not len(xs):
        return rgb
    pick = int(rng.integers(len(xs)))
    x, y = int(xs[pick] * 8), int(ys[pick] * 8)
    mask = np.zeros((height, width), np.uint8)
    thickness = int(rng.uniform(6, 30))
    if rng.random() < 0.5:
        cv2.circle(mask, (x, y), thickness, 255, -1)
    else:
        angle = rng.uniform(0, 2 * np.pi)
        points = [(x, y)]
        for _ in range(int(rng.integers(2, 6))):
            angle += rng.normal(0, 0.6)
            step = rng.uniform(20, 120)
            points.append((int(points[-1][0] + step * np.cos(angle)), int(points[-1][1] + step * np.sin(angle))))
        cv2.polylines(mask, [np.array(points, np.int32)], False, 255, thickness)
    mask &= glass.view(np.uint8) * 255
    # Away from the tissue edge, so the ink never reads as stained tissue at the border.
    near = cv2.dilate(geometry.tissue.view(np.uint8), np.ones((9, 9), np.uint8)) > 0
    mask[near] = 0
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 1.5) * rng.uniform(0.5, 0.9)
    alpha[cv2.dilate(geometry.tissue.view(np.uint8), np.ones((7, 7), np.uint8)) > 0] = 0
    alpha = alpha[..., None]
    colour = np.array(PEN_COLOURS[int(rng.integers(len(PEN_COLOURS)))], np.float32)
    return np.clip(rgb * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def bubble(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """An air bubble under the coverslip: a dark refractive rim, slightly brighter inside."""
    height, width = rgb.shape[:2]
    radius = int(rng.uniform(0.05, 0.25) * min(height, width)) + 8
    centre = (int(rng.integers(width)), int(rng.integers(height)))
    rim = np.zeros((height, width), np.uint8)
    cv2.circle(rim, centre, radius, 255, int(rng.uniform(2, 6)))
    inside = np.zeros((height, width), np.uint8)
    cv2.circle(inside, centre, radius, 255, -1)
    rim_f = cv2.GaussianBlur(rim.astype(np.float32) / 255, (0, 0), 1.5) * rng.uniform(0.3, 0.6)
    out = rgb.astype(np.float32) * (1 - rim_f[..., None])
    out[inside > 0] = out[inside > 0] * 0.97 + 255 * 0.03
    return np.clip(out, 0, 255).astype(np.uint8)


def low_resolution(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The look of a scan saved small and enlarged again: detail below `factor` pixels is gone."""
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, int(width / factor)), max(1, int(height / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at `quality` (blocking and ringing as real exports have)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        return rgb
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def apply_artefacts(rng: np.random.Generator, rgb: np.ndarray, geometry: Geometry, style: Style) -> np.ndarray:
    """Every artefact the style switched on, in the order a slide meets them (glass, then scanner, then file)."""
    if style.flag("dust"):
        rgb = dust(rng, style, rgb)
    if style.flag("pen"):
        rgb = pen_mark(rng, rgb, geometry)
    if style.flag("bubble"):
        rgb = bubble(rng, rgb)
    if style.flag("stitching"):
        rgb = stitching(rng, rgb)
    if style.flag("low_resolution"):
        rgb = low_resolution(rgb, style.low_resolution)
    if style.flag("jpeg"):
        rgb = jpeg(rgb, int(style.jpeg_quality))
    return rgb
