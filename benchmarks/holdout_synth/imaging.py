"""The scanner and the glass: illumination, dust, pen, bubbles, focus, noise and JPEG.

These act on light, after the tissue is stained, and never change a label:
specks, ink and bubbles lie on the coverslip over glass (or tissue), focus
drifts across the slide, and the camera adds noise and compression.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import dilate, draw_polylines, fill_polygons, radial_polygon, random_walk_curve
from .params import SlideParams

_LN10 = np.float32(np.log(10.0))


def _absorb(light: np.ndarray, density: np.ndarray, x0: int, y0: int, colour: np.ndarray) -> None:
    """Darken a window of `light` in place by a grey density patch tinted by `colour` (OD per channel)."""
    h, w = density.shape
    window = light[y0:y0 + h, x0:x0 + w]
    window *= np.exp(-_LN10 * density[..., None] * colour[None, None, :])


def coverslip(rng: np.random.Generator, light: np.ndarray, tissue: np.ndarray, p: SlideParams) -> None:
    """Dust, lint, pen ink and bubble rims on the coverslip, applied to `light` in place."""
    h, w = tissue.shape
    grey = np.array([1.0, 1.0, 0.95], np.float32)
    for _ in range(int(rng.poisson(p.dust * h * w / 1e6))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        size = 130 if rng.random() < 0.15 else 10
        x0, y0 = int(max(x - size, 0)), int(max(y - size, 0))
        x1, y1 = int(min(x + size, w)), int(min(y + size, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if size > 10:
            fibre = random_walk_curve(rng, np.array([x - x0, y - y0]), rng.uniform(0, 6.3), rng.uniform(15, 110), 2.0,
                                      0.15)
            draw_polylines(patch, [fibre], int(rng.integers(40, 150)), 1)
        else:
            poly = radial_polygon(rng, x - x0, y - y0, rng.uniform(0.7, 3.5), roughness=0.5, points=12)
            fill_polygons(patch.shape, [poly], int(rng.integers(50, 220)), out=patch)
        density = cv2.GaussianBlur(patch.astype(np.float32) / 255.0, (0, 0), rng.uniform(0.5, 1.5))
        _absorb(light, density, x0, y0, grey)
    if p.pen_mark:
        ink = rng.choice(np.array([[0.9, 0.55, 0.1], [0.8, 0.15, 0.7], [0.6, 0.6, 0.6]], np.float32))
        stroke = np.zeros((h, w), np.uint8)
        # Along the top or bottom margin, where a pathologist would mark the slide.
        y = rng.uniform(0.02, 0.1) * h if rng.random() < 0.5 else rng.uniform(0.9, 0.98) * h
        x = rng.uniform(0, 0.6) * w
        path = random_walk_curve(rng, np.array([x, y]), rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.35) * w, 4.0, 0.02)
        draw_polylines(stroke, [path], 255, int(min(rng.uniform(6, 22) * p.scale, 0.03 * h) + 1))
        ys, xs = np.nonzero(stroke)
        if len(xs):
            x0, x1, y0, y1 = max(xs.min() - 6, 0), min(xs.max() + 7, w), max(ys.min() - 6, 0), min(ys.max() + 7, h)
            density = cv2.GaussianBlur(stroke[y0:y1, x0:x1].astype(np.float32) / 255.0, (0, 0), 1.5)
            _absorb(light, density * rng.uniform(0.35, 0.9), x0, y0, ink)
    if p.bubbles:
        glass = ~dilate(tissue, 10)
        for _ in range(p.bubbles):
            r = rng.uniform(20, 120) * p.scale
            for _ in range(20):
                cx, cy = rng.uniform(r, max(w - r, r + 1)), rng.uniform(r, max(h - r, r + 1))
                x0, x1, y0, y1 = int(cx - r - 6), int(cx + r + 7), int(cy - r - 6), int(cy + r + 7)
                if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and glass[y0:y1, x0:x1].all():
                    ring = np.zeros((y1 - y0, x1 - x0), np.uint8)
                    cv2.ellipse(ring, (int(cx) - x0, int(cy) - y0), (int(r), int(r * rng.uniform(0.85, 1.0))),
                                float(rng.uniform(0, 180)), 0, 360, 255, int(rng.integers(2, 5)))
                    density = cv2.GaussianBlur(ring.astype(np.float32), (0, 0), 1.0) / 255.0 * 0.45
                    _absorb(light, density, x0, y0, grey)
                    break


def illumination(rng: np.random.Generator, shape: tuple[int, int], glass: np.ndarray) -> np.ndarray:
    """(H, W, 3) light reaching the camera: the glass colour with a gentle falloff across the field."""
    h, w = shape
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    fall = 1.0 - rng.uniform(0.0, 0.05) * (xx**2 + yy**2) / 2 + rng.uniform(-0.02, 0.02) * xx
    return fall[..., None] * glass[None, None, :]


def focus(rng: np.random.Generator, image: np.ndarray, p: SlideParams) -> np.ndarray:
    """Blur that varies across the slide: a drift along the core and one soft out-of-focus area."""
    h, w = image.shape[:2]
    sharp = cv2.GaussianBlur(image, (0, 0), max(p.blur_base, 0.1))
    if p.blur_range < 0.05:
        return sharp
    soft = cv2.GaussianBlur(image, (0, 0), p.blur_base + p.blur_range)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    start, end = rng.uniform(0, 1, 2)
    cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.35)
    aspect = np.float32(w / h)
    f = (start + (end - start) * xx) + rng.uniform(0.3, 1.0) * np.exp(
        -(((xx - cx) * aspect) ** 2 + (yy - cy) ** 2) / (2 * r**2))
    f = np.clip(f, 0, 1).astype(np.float32)
    # Blending two Gaussian blurs of the same image approximates an intermediate blur well enough.
    soft -= sharp
    soft *= f[..., None]
    soft += sharp
    return soft


def sensor(rng: np.random.Generator, image: np.ndarray, p: SlideParams) -> np.ndarray:
    """Shot-like noise (stronger in bright pixels), a tone curve, 8-bit quantisation and JPEG."""
    np.clip(image, 0, 1, out=image)
    sigma = np.sqrt(image)
    sigma *= np.float32(0.5 * p.noise / 255.0)
    sigma += np.float32(0.5 * p.noise / 255.0)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= sigma
    noise += image
    np.clip(noise, 0, 1, out=noise)
    noise *= 4095
    noise += 0.5
    lut = np.round(np.linspace(0, 1, 4096) ** p.gamma * 255).astype(np.uint8)
    rgb = lut[noise.astype(np.uint16)]
    if p.jpeg_quality:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality])
        if ok:
            rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb
