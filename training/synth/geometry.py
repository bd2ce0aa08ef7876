"""The layout of one synthetic biopsy: where the core, bone, fat cells, lumens and tears are.

Everything the painter draws and every label come from the masks built here,
so the ground truth is exact by construction. Physical sizes are in pixels and
do not change with the image size (adipocytes 15-30 px, trabeculae 40-120 px
thick, lumens 100-300 px); only the core's length and thickness follow the
image. Large smooth shapes are computed at a quarter of the resolution as
signed fields (pixels inside > 0) and thresholded after a bilinear upsampling,
which keeps their edges smooth and the cost low.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from bonemarrow.runtime.labels import BONE, FAT, OTHER
from bonemarrow.training.synth.noise import fractal_noise, noise_1d, smooth_noise, upsample

LOW = 4  # the coarse fields' downsampling factor


@dataclass
class Geometry:
    """Boolean (H, W) masks of one biopsy, plus its label map and the parameters drawn."""

    labels: np.ndarray          # uint8 class indices
    tissue: np.ndarray          # every non-background pixel
    bone: np.ndarray
    vacuole: np.ndarray         # white inside of adipocytes and retraction gaps (labelled fat)
    membrane: np.ndarray        # adipocyte membranes (labelled fat)
    marrow: np.ndarray          # haematopoietic marrow and stroma (labelled other), walls excluded
    wall: np.ndarray            # vessel walls (labelled other)
    bone_distance: np.ndarray   # float32 distance to the bone edge inside bone (lamellae), 0 elsewhere
    params: dict


def _core_field(rng: np.random.Generator, height: int, width: int, lh: int, lw: int) -> tuple[np.ndarray, dict]:
    """Signed distance-like field of an elongated, ragged core (in full-resolution pixels)."""
    thickness = rng.uniform(0.6, 0.8) * height
    length = rng.uniform(0.72, 0.97) * width
    centre_x = width / 2 + rng.uniform(-1, 1) * (width - length) / 2
    xs = (np.arange(lw, dtype=np.float32) + 0.5) * LOW
    ys = (np.arange(lh, dtype=np.float32) + 0.5) * LOW
    slack = max((height - thickness) / 2 - 0.02 * height, 0.0)
    centre_y = height / 2 + slack * rng.uniform(0.2, 0.8) * np.tanh(noise_1d(rng, lw, rng.uniform(0.3, 0.8) * lw))
    half = thickness / 2 * (1 + 0.07 * noise_1d(rng, lw, 0.15 * lw + 8))
    u = np.clip(np.abs(xs - centre_x) / (length / 2), 0, 1)
    power = rng.uniform(2.5, 6.0)
    half = half * (1 - u**power) ** (1 / power)
    beyond_ends = np.maximum(np.abs(xs - centre_x) - length / 2, 0)  # keeps ragged edges from trailing off
    field = half[None, :] - np.abs(ys[:, None] - centre_y[None, :]) - beyond_ends[None, :]
    roughness = rng.uniform(6, 22)
    field += roughness * fractal_noise(rng, (lh, lw), 140 / LOW, octaves=3, persistence=0.6)
    breaks = int(rng.choice([0, 0, 1, 1, 2]))
    yy = ys[:, None]
    for _ in range(breaks):
        bx = centre_x + rng.uniform(-0.35, 0.35) * length
        gap = rng.uniform(15, 110)
        slant = rng.uniform(-0.6, 0.6)
        wobble = 15 * smooth_noise(rng, (lh, lw), 60 / LOW)
        band = np.abs(xs[None, :] - bx + slant * (yy - height / 2) + wobble) - gap / 2
        field = np.minimum(field, band)
    return field.astype(np.float32), {"core_thickness": float(thickness), "core_length": float(length), "breaks": breaks}


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: rounds the corner where two signed fields meet (rounded bone ends)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _bone_field(rng: np.random.Generator, core_low: np.ndarray, core_field: np.ndarray,
                target: float) -> tuple[np.ndarray, dict]:
    """Signed field of trabeculae (and sometimes a cortical plate) covering about `target` of the core."""
    lh, lw = core_low.shape
    core_count = max(int(core_low.sum()), 1)
    field = np.full((lh, lw), -50.0, np.float32)
    info = {"target_density": float(target), "cortex": False}
    if target <= 0 or not core_low.any():
        return field, info
    if rng.random() < 0.3:  # a cortical plate along one side of the core, as iliac crest cores often have
        depth = rng.uniform(60, 180)
        side = smooth_noise(rng, (lh, lw), 500 / LOW)
        cortex = np.minimum(depth - core_field, 40 * (side - rng.uniform(0.3, 1.2)))
        if (cortex > 0)[core_low].mean() < target * 0.6:
            field = cortex
            info["cortex"] = True
    remaining = target - float((field > 0)[core_low].mean())
    if remaining <= 0.005:
        return field, info
    spacing = rng.uniform(170, 320)
    thick = rng.uniform(45, 110) * (1 + 0.25 * smooth_noise(rng, (lh, lw), 400 / LOW))
    thick = np.clip(thick, 38, 125)
    for _ in range(6):
        n = smooth_noise(rng, (lh, lw), spacing / LOW)
        gy, gx = np.gradient(n)
        slope = np.sqrt(gx * gx + gy * gy) / LOW + 1e-4
        ridge = thick / 2 - np.abs(n) / slope
        ridge += 3 * smooth_noise(rng, (lh, lw), 30 / LOW)
        potential = (ridge > 0) & core_low
        if potential.sum() >= remaining * core_count or spacing < 90:
            break
        spacing *= 0.75
    frag_scale = rng.uniform(150, 350)
    pieces = smooth_noise(rng, (lh, lw), frag_scale / LOW)
    pot_count = int(potential.sum())
    if pot_count > remaining * core_count:
        cut = float(np.quantile(pieces[potential], 1 - remaining * core_count / pot_count))
        trabeculae = _smooth_min(ridge, (pieces - cut) * frag_scale / 5, 25.0)
    else:  # not enough network even at the densest spacing: thicken it instead
        level = float(np.quantile(ridge[core_low], 1 - remaining))
        trabeculae = ridge - level
    info.update(spacing=float(spacing))
    return np.maximum(field, trabeculae.astype(np.float32)), info


def _wobbly_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float, aspect: float,
                    angle: float, points: int = 36) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones(points)
    for k in (2, 3, 4, 5):
        r += rng.normal(0, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    x, y = radius * r * np.cos(theta) * aspect, radius * r * np.sin(theta)
    ca, sa = math.cos(angle), math.sin(angle)
    pts = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)
    return np.round(pts).astype(np.int32)


def _random_walk(rng: np.random.Generator, x: float, y: float, angle: float, length: float,
                 step: float = 12.0) -> np.ndarray:
    steps = max(2, int(length / step))
    angles = angle + np.cumsum(rng.normal(0, 0.18, steps))
    xs = x + np.cumsum(step * np.cos(angles))
    ys = y + np.cumsum(step * np.sin(angles))
    return np.round(np.stack([xs, ys], axis=1)).astype(np.int32)


def _sample_points(rng: np.random.Generator, mask: np.ndarray, count: int) -> np.ndarray:
    """`count` random (x, y) full-resolution points inside a low-resolution mask."""
    ys, xs = np.nonzero(mask)
    if count <= 0 or len(xs) == 0:
        return np.zeros((0, 2))
    pick = rng.integers(0, len(xs), count)
    return np.stack([(xs[pick] + rng.random(count)) * LOW, (ys[pick] + rng.random(count)) * LOW], axis=1)


def _holes(rng: np.random.Generator, shape: tuple[int, int], core_low: np.ndarray, core_field: np.ndarray,
           marrow_low: np.ndarray, core_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Background inside the core: tears, small holes and vessel lumens (with their walls)."""
    height, width = shape
    tears = np.zeros(shape, np.uint8)
    lumen = np.zeros(shape, np.uint8)
    wall = np.zeros(shape, np.uint8)
    n_tears = int(rng.poisson(core_area / 2.0e6 * rng.uniform(0, 2.5)))
    for x, y in _sample_points(rng, core_low, n_tears):
        angle = rng.choice([np.pi / 2, 0.0]) + rng.normal(0, 0.5)
        walk = _random_walk(rng, x, y, angle, rng.uniform(80, 900))
        cv2.polylines(tears, [walk], False, 255, int(rng.integers(3, 22)))
    n_holes = int(rng.poisson(core_area / 1.5e6 * rng.uniform(0, 3)))
    for x, y in _sample_points(rng, core_low, n_holes):
        cv2.fillPoly(tears, [_wobbly_polygon(rng, x, y, rng.uniform(10, 45), rng.uniform(1, 2.5),
                                             rng.uniform(0, np.pi))], 255)
    inner = marrow_low & (core_field > 90)
    n_lumens = int(rng.poisson(core_area / 1.0e6 * rng.uniform(0.2, 2.0)))
    for x, y in _sample_points(rng, inner, n_lumens):
        polygon = _wobbly_polygon(rng, x, y, rng.uniform(50, 150) / 1.3, rng.uniform(1, 1.7), rng.uniform(0, np.pi))
        cv2.fillPoly(lumen, [polygon], 255)
        cv2.polylines(wall, [polygon], True, 255, int(rng.integers(3, 6)))
    info = {"tears": n_tears, "holes": n_holes, "lumens": n_lumens}
    return tears > 0, lumen > 0, wall > 0, info


def _fat_cells(rng: np.random.Generator, shape: tuple[int, int], fat_bias: float) -> tuple[np.ndarray, np.ndarray]:
    """Adipocytes: Voronoi cells of packed-fat size, rounded off, and which of them hold fat.

    Seeds sit on a jittered grid thinned by a smooth keep-probability, so cells
    are polygonal, packed and 15-30 px across with regional variation. A cell's
    vacuole is its Voronoi polygon cut by a disc around the seed: packed fat
    stays polygonal, a lone adipocyte among haematopoietic cells turns round.
    Returns the "inside a fat cell" mask and the 1-px boundaries between cells.
    """
    height, width = shape
    pitch = rng.uniform(12.0, 14.0)
    gy, gx = np.mgrid[0:height + pitch:pitch, 0:width + pitch:pitch]
    sy = gy + rng.uniform(-0.45, 0.45, gy.shape) * pitch
    sx = gx + rng.uniform(-0.45, 0.45, gx.shape) * pitch
    keep_field = smooth_noise(rng, gy.shape, 40 / pitch)
    keep = rng.random(gy.shape) < np.clip(0.5 + 0.2 * keep_field + rng.uniform(-0.15, 0.15), 0.22, 0.85)
    fat_field = smooth_noise(rng, gy.shape, rng.uniform(250, 600) / pitch)
    fat_prob = 1 / (1 + np.exp(-(fat_field + fat_bias) / 0.45))
    fat = rng.random(gy.shape) < fat_prob
    radius = rng.uniform(9.0, 16.0, gy.shape)
    sy, sx, fat, radius = sy[keep], sx[keep], fat[keep], radius[keep]
    inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
    sy, sx, fat, radius = sy[inside].astype(np.int32), sx[inside].astype(np.int32), fat[inside], radius[inside]
    seeds = np.full(shape, 255, np.uint8)
    seeds[sy, sx] = 0
    distance, cell = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    # A fat cell's reach; 0 for haematopoietic cells, so the comparison below excludes them.
    reach = np.zeros(int(cell.max()) + 1, np.float32)
    reach[cell[sy, sx]] = np.where(fat, radius, 0)
    fat_cells = distance < reach[cell]
    boundary = np.zeros(shape, bool)
    boundary[:, :-1] |= cell[:, :-1] != cell[:, 1:]
    boundary[:-1, :] |= cell[:-1, :] != cell[1:, :]
    return fat_cells, boundary


def build_geometry(rng: np.random.Generator, height: int, width: int) -> Geometry:
    """Draw the layout of one biopsy in a landscape frame (height <= width)."""
    shape = (height, width)
    lh, lw = math.ceil(height / LOW), math.ceil(width / LOW)
    core_field, params = _core_field(rng, height, width, lh, lw)
    core_low = core_field > 0
    target = 0.0 if rng.random() < 0.08 else float(rng.uniform(0.03, 0.40))
    bone_field, bone_info = _bone_field(rng, core_low, core_field, target)
    params.update(bone_info)
    core = upsample(core_field, shape) > 0
    bone = (upsample(bone_field, shape) > 0) & core
    marrow_low = core_low & (bone_field < -20)
    tears, lumen, wall, hole_info = _holes(rng, shape, core_low, core_field, marrow_low, float(core.sum()))
    params.update(hole_info)
    background_inside = tears | (lumen & ~wall & ~bone)
    tissue = core & ~background_inside
    bone &= tissue
    marrow = tissue & ~bone
    wall &= marrow
    # Retraction gaps: thin white clefts in the marrow along parts of the bone edge.
    gaps = np.zeros(shape, bool)
    bone_distance = np.zeros(shape, np.float32)
    if bone.any():
        outside = cv2.distanceTransform((~bone).astype(np.uint8), cv2.DIST_L2, 3)
        width_field = upsample(rng.uniform(1.5, 6.0) * (1 + 0.4 * smooth_noise(rng, (lh, lw), 200 / LOW)), shape)
        share = rng.uniform(0.02, 0.6)  # the fraction of the bone edge that has retracted
        along = upsample(smooth_noise(rng, (lh, lw), 150 / LOW), shape) > NormalDist().inv_cdf(1 - share)
        gaps = (outside > 0) & (outside <= width_field) & along & marrow & ~wall
        # A cleft stays inside the section: never open onto the slide or a tear.
        gaps &= cv2.erode(tissue.view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                          borderValue=0) > 0
        bone_distance = cv2.distanceTransform(bone.astype(np.uint8), cv2.DIST_L2, 3)
    params["retraction_share"] = float(gaps.sum() / max(bone.sum(), 1))
    fat_bias = float(rng.uniform(-1.6, 1.6))
    params["fat_bias"] = fat_bias
    fat_cells, boundary = _fat_cells(rng, shape, fat_bias)
    fat_cells &= marrow & ~gaps & ~wall
    # Every vacuole is closed: a membrane on its cell boundaries and wherever it meets anything else.
    eroded = cv2.erode(fat_cells.view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)
    membrane = fat_cells & (boundary | (eroded == 0))
    vacuole = (fat_cells & ~membrane) | gaps
    labels = np.zeros(shape, np.uint8)
    labels[tissue] = OTHER
    labels[bone] = BONE
    labels[fat_cells | gaps] = FAT
    return Geometry(labels=labels, tissue=tissue, bone=bone, vacuole=vacuole, membrane=membrane,
                    marrow=marrow & ~fat_cells & ~gaps & ~wall, wall=wall, bone_distance=bone_distance, params=params)
