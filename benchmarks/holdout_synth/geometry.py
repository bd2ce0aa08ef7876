"""Plain shapes the object builders share: point sets, outlines, curves and masks.

Everything here is explicit geometry (coordinates, polygons, 1-D profiles), not
2-D noise fields: the hold-out set is meant to differ in construction from the
training generator, and explicit shapes also make labels exact by construction.
"""
from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
_ONE = 1 << SHIFT


def jittered_hex(rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float,
                 step: float, jitter: float) -> np.ndarray:
    """(N, 2) float points on a hexagonal lattice of spacing `step`, each moved by up to jitter*step."""
    dy = step * np.sqrt(3.0) / 2.0
    ys = np.arange(y0, y1 + dy, dy)
    xs = np.arange(x0 - step, x1 + step, step)
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + (np.arange(len(ys))[:, None] % 2) * (step / 2.0)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    points += rng.uniform(-jitter, jitter, points.shape) * step
    return points


def inside(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Boolean per point: does its nearest pixel lie in `mask`."""
    h, w = mask.shape
    xi = np.round(points[:, 0]).astype(np.int64)
    yi = np.round(points[:, 1]).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    result = np.zeros(len(points), dtype=bool)
    result[ok] = mask[yi[ok], xi[ok]]
    return result


def sample_in_mask(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
    """`count` uniformly random (x, y) float points on pixels of `mask` (empty if the mask is empty).

    Rejection sampling over the image: cheaper than listing the mask's pixels
    when only a few points are wanted from a large mask.
    """
    h, w = mask.shape
    if count <= 0:
        return np.zeros((0, 2))
    fraction = np.count_nonzero(mask) / mask.size
    if fraction == 0:
        return np.zeros((0, 2))
    if fraction < 0.02:
        ys, xs = np.nonzero(mask)
        pick = rng.integers(0, len(xs), count)
        return np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64) + rng.uniform(-0.5, 0.5, (count, 2))
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        batch = int((count - total) / fraction * 1.2) + 16
        points = rng.uniform(0, 1, (batch, 2)) * (w, h) - 0.5
        points = points[inside(points, mask)]
        found.append(points)
        total += len(points)
    return np.concatenate(found)[:count]


def dart_throw(candidates: np.ndarray, radius: float) -> np.ndarray:
    """Greedy Poisson-disc thinning: keep candidates in order unless closer than `radius` to a kept one."""
    if len(candidates) == 0:
        return candidates
    cell = radius / np.sqrt(2.0)
    origin = candidates.min(axis=0)
    keys = np.floor((candidates - origin) / cell).astype(np.int64)
    grid: dict[tuple[int, int], int] = {}
    kept: list[int] = []
    r2 = radius * radius
    for index, (kx, ky) in enumerate(keys):
        px, py = candidates[index]
        ok = True
        for gx in range(kx - 2, kx + 3):
            for gy in range(ky - 2, ky + 3):
                other = grid.get((gx, gy))
                if other is not None:
                    ox, oy = candidates[other]
                    if (ox - px) ** 2 + (oy - py) ** 2 < r2:
                        ok = False
                        break
            if not ok:
                break
        if ok:
            grid[(int(kx), int(ky))] = index
            kept.append(index)
    return candidates[kept]


def rag_profile(rng: np.random.Generator, n: int, amplitude: float, wavelength: float,
                octaves: int = 5, persistence: float = 0.55) -> np.ndarray:
    """A 1-D ragged profile of length n: summed sinusoids, each octave half the wavelength and smaller.

    Used for the edges of the core and the jagged lines that break it; a 1-D
    profile per edge is cheaper and easier to bound than a 2-D field.
    """
    t = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    total = 0.0
    for k in range(octaves):
        amp = persistence**k
        total += amp
        lam = max(wavelength / 2**k, 3.0)
        for _ in range(2):
            freq = 2 * np.pi / (lam * rng.uniform(0.7, 1.4))
            out += amp * np.sin(freq * t + rng.uniform(0, 2 * np.pi)) / 2
    return out * amplitude / total


def radial_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float, *, aspect: float = 1.0,
                   angle: float = 0.0, roughness: float = 0.15, points: int = 40) -> np.ndarray:
    """An irregular closed outline (points, 2): a circle with random low harmonics, stretched and turned."""
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones(points)
    for k in range(2, 7):
        r += rng.uniform(0, roughness / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None) * radius
    x = r * np.cos(theta) * np.sqrt(aspect)
    y = r * np.sin(theta) / np.sqrt(aspect)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def bezier(p0: np.ndarray, control: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) points on the quadratic Bezier curve p0 -> p1 pulled towards `control`."""
    t = np.linspace(0.0, 1.0, max(n, 2))[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * control + t**2 * p1


def random_walk_curve(rng: np.random.Generator, start: np.ndarray, heading: float, length: float,
                      step: float, wiggle: float) -> np.ndarray:
    """A smooth wandering polyline (a tear, a fibre): heading changes by a small random turn each step."""
    n = max(int(length / step), 2)
    turns = np.cumsum(rng.normal(0.0, wiggle, n))
    turns -= np.linspace(0, turns[-1], n) * 0.5  # keep the overall direction
    headings = heading + turns
    steps = np.stack([np.cos(headings), np.sin(headings)], axis=1) * step
    return start + np.concatenate([[np.zeros(2)], np.cumsum(steps, axis=0)])[:n]


def chaikin(poly: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Corner-cutting smoothing of a closed polygon: rounds the corners, keeps the size."""
    for _ in range(iterations):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], axis=1).reshape(-1, 2)
    return poly


def to_cv(poly: np.ndarray) -> np.ndarray:
    """Float outline to cv2's fixed-point int32 (use with shift=SHIFT)."""
    return np.round(np.asarray(poly) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def fill_polygons(shape: tuple[int, int], polys: list[np.ndarray], value: int = 1,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Fill closed float outlines into a uint8 mask (new, or `out`)."""
    if out is None:
        out = np.zeros(shape, dtype=np.uint8)
    if polys:
        cv2.fillPoly(out, [to_cv(p) for p in polys], value, lineType=cv2.LINE_8, shift=SHIFT)
    return out


def draw_polylines(mask: np.ndarray, lines: list[np.ndarray], value: int, thickness: int,
                   closed: bool = False) -> np.ndarray:
    """Draw float polylines into a mask (hard edges, so the same pixels can carry a label)."""
    if lines:
        cv2.polylines(mask, [to_cv(p) for p in lines], closed, value, thickness=max(int(thickness), 1),
                      lineType=cv2.LINE_8, shift=SHIFT)
    return mask


def disc(radius: int) -> np.ndarray:
    """A filled-disc structuring element of the given radius."""
    size = 2 * max(int(radius), 0) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within `radius` of the mask (a distance transform for large radii, whose cost does not grow with r)."""
    r = int(round(radius))
    if r <= 0:
        return mask.copy()
    if r > 4:
        return cv2.distanceTransform((~mask.astype(bool)).astype(np.uint8), cv2.DIST_L2, 5) <= r
    return cv2.dilate(mask.astype(np.uint8), disc(r)) > 0


def erode(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels deeper than `radius` inside the mask (the image border counts as outside)."""
    r = int(round(radius))
    if r <= 0:
        return mask.copy()
    if r > 4:
        padded = np.pad(mask.astype(np.uint8), 1)
        return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] > r
    return cv2.erode(mask.astype(np.uint8), disc(r), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each mask pixel to the nearest pixel outside it (0 outside)."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
