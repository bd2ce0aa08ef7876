"""The layout of one synthetic biopsy: where the core, bone, fat cells, lumens and tears are.

Everything the painter draws and every label come from the masks built here,
so the ground truth is exact by construction. Lengths come from the image's
`Style` (nominal pixels times its scale); only the core's length and thickness
follow the image size. Large smooth shapes are computed at a quarter of the
resolution as signed fields (pixels inside > 0) and thresholded after a
bilinear upsampling, which keeps their edges smooth and the cost low.

No cheap cue may decide a class, so the ranges overlap on purpose: adipocytes
(fat) come as large as lumens (background), lumens come as small as
adipocytes, some lumens hold blood, some fat cells are collapsed, and marrow
holds haemorrhage and fibrotic streaks that are as pink as bone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from bonemarrow.runtime.labels import BONE, FAT, OTHER
from bonemarrow.training.synth.noise import fractal_noise, noise_1d, smooth_noise, upsample
from bonemarrow.training.synth.style import TRAIN, Style, draw_style

LOW = 4  # the coarse fields' downsampling factor


@dataclass
class Geometry:
    """Boolean (H, W) masks of one biopsy, plus its label map and the parameters drawn."""

    labels: np.ndarray          # uint8 class indices
    tissue: np.ndarray          # every non-background pixel
    bone: np.ndarray
    vacuole: np.ndarray         # white inside of adipocytes and retraction gaps (labelled fat)
    membrane: np.ndarray        # adipocyte membranes and folds of collapsed cells (labelled fat)
    marrow: np.ndarray          # haematopoietic marrow and stroma (labelled other), the masks below excluded
    wall: np.ndarray            # vessel walls (labelled other)
    blood: np.ndarray           # red cells pooled in lumens and haemorrhage (labelled other)
    fibrosis: np.ndarray        # fibrotic streaks (labelled other)
    bone_distance: np.ndarray   # float32 distance to the bone edge inside bone (lamellae), 0 elsewhere
    params: dict


def _core_field(rng: np.random.Generator, style: Style, height: int, width: int, lh: int,
                lw: int) -> tuple[np.ndarray, dict]:
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
    roughness = rng.uniform(6, 22) * min(style.scale, 1.3)
    field += roughness * fractal_noise(rng, (lh, lw), style.length(140) / LOW, octaves=3, persistence=0.6)
    breaks = int(rng.choice([0, 0, 1, 1, 2]))
    yy = ys[:, None]
    for _ in range(breaks):
        bx = centre_x + rng.uniform(-0.35, 0.35) * length
        gap = style.length(rng.uniform(15, 110))
        slant = rng.uniform(-0.6, 0.6)
        wobble = style.length(15) * smooth_noise(rng, (lh, lw), style.length(60) / LOW)
        band = np.abs(xs[None, :] - bx + slant * (yy - height / 2) + wobble) - gap / 2
        field = np.minimum(field, band)
    info = {"core_thickness": float(thickness), "core_length": float(length), "breaks": breaks,
            "core_centre_x": float(centre_x)}
    return field.astype(np.float32), info


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: rounds the corner where two signed fields meet (rounded bone ends)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _cortex(rng: np.random.Generator, style: Style, core_field: np.ndarray, core_info: dict) -> np.ndarray:
    """Signed field of cortical bone: a plate along one side and/or pieces at the core's ends."""
    lh, lw = core_field.shape
    field = np.full((lh, lw), -50.0, np.float32)
    if style.flag("cortex"):
        depth = style.length(rng.uniform(60, 180))
        side = smooth_noise(rng, (lh, lw), style.length(500) / LOW)
        field = np.maximum(field, np.minimum(depth - core_field, 40 * (side - rng.uniform(0.3, 1.2))))
    if style.flag("end_cortex"):
        xs = (np.arange(lw, dtype=np.float32) + 0.5) * LOW
        half = core_info["core_length"] / 2
        depth = style.length(rng.uniform(80, 260))
        reach = np.abs(xs - core_info["core_centre_x"]) - (half - depth)
        ragged = style.length(25) * smooth_noise(rng, (lh, lw), style.length(120) / LOW)
        end = np.minimum(reach[None, :] + ragged, core_field + style.length(5))
        field = np.maximum(field, end.astype(np.float32))
    return field


def _bone_field(rng: np.random.Generator, style: Style, core_low: np.ndarray, core_field: np.ndarray,
                core_info: dict) -> tuple[np.ndarray, dict]:
    """Signed field of trabeculae (and cortical bone) covering about the drawn share of the core."""
    lh, lw = core_low.shape
    core_count = max(int(core_low.sum()), 1)
    target = float(style.bone_density)
    info = {"target_density": target, "cortex": style.flag("cortex"), "end_cortex": style.flag("end_cortex")}
    if target <= 0 or not core_low.any():
        return np.full((lh, lw), -50.0, np.float32), info
    field = _cortex(rng, style, core_field, core_info)
    if (field > 0)[core_low].mean() > 0.7 * target:  # cortex alone would overshoot: drop it
        field = np.full((lh, lw), -50.0, np.float32)
        info.update(cortex=False, end_cortex=False)
    remaining = target - float((field > 0)[core_low].mean())
    if remaining <= 0.005:
        return field, info
    spacing = style.length(rng.uniform(170, 320))
    thick = style.length(style.trabecula_thickness) * (1 + 0.25 * smooth_noise(rng, (lh, lw), style.length(400) / LOW))
    thick = np.clip(thick, style.length(30), style.length(130))
    for _ in range(6):
        n = smooth_noise(rng, (lh, lw), spacing / LOW)
        gy, gx = np.gradient(n)
        slope = np.sqrt(gx * gx + gy * gy) / LOW + 1e-4
        ridge = thick / 2 - np.abs(n) / slope
        ridge += style.length(3) * smooth_noise(rng, (lh, lw), style.length(30) / LOW)
        potential = (ridge > 0) & core_low
        if potential.sum() >= remaining * core_count or spacing < style.length(90):
            break
        spacing *= 0.75
    frag_scale = style.length(rng.uniform(150, 350))
    pieces = smooth_noise(rng, (lh, lw), frag_scale / LOW)
    pot_count = int(potential.sum())
    if pot_count > remaining * core_count:
        cut = float(np.quantile(pieces[potential], 1 - remaining * core_count / pot_count))
        trabeculae = _smooth_min(ridge, (pieces - cut) * frag_scale / 5, style.length(25.0))
    else:  # not enough network even at the densest spacing: thicken it instead
        level = float(np.quantile(ridge[core_low], 1 - remaining))
        trabeculae = ridge - level
    info.update(spacing=float(spacing))
    return np.maximum(field, trabeculae.astype(np.float32)), info


def _wobbly_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float, aspect: float,
                    angle: float, points: int = 36, wobble: float = 0.06) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones(points)
    for k in (2, 3, 4, 5):
        r += rng.normal(0, wobble) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.3)
    x, y = radius * r * np.cos(theta) * aspect, radius * r * np.sin(theta)
    ca, sa = math.cos(angle), math.sin(angle)
    pts = np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)
    return np.round(pts).astype(np.int32)


def _random_walk(rng: np.random.Generator, x: float, y: float, angle: float, length: float,
                 step: float = 12.0, turn: float = 0.18) -> np.ndarray:
    steps = max(2, int(length / step))
    angles = angle + np.cumsum(rng.normal(0, turn, steps))
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


def _holes(rng: np.random.Generator, style: Style, shape: tuple[int, int], core_low: np.ndarray,
           core_field: np.ndarray, marrow_low: np.ndarray, bone_low: np.ndarray,
           core_area: float, core_thickness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Background inside the core: tears, holes, cracks in crushed bone, and vessel/sinusoid lumens.

    Lumens range from smaller than a large adipocyte to several times larger,
    round to elongated; most have a thin wall (other), some hold pooled blood
    (other), so neither size nor emptiness alone says "background".
    """
    tears = np.zeros(shape, np.uint8)
    lumen = np.zeros(shape, np.uint8)
    wall = np.zeros(shape, np.uint8)
    scale2 = style.scale**2
    n_tears = int(rng.poisson(core_area / 2.0e6 * style.tears / max(scale2, 0.25)))
    for x, y in _sample_points(rng, core_low, n_tears):
        angle = rng.choice([np.pi / 2, 0.0]) + rng.normal(0, 0.5)
        walk = _random_walk(rng, x, y, angle, style.length(rng.uniform(80, 900)), step=style.length(12))
        cv2.polylines(tears, [walk], False, 255, max(1, int(style.length(rng.integers(3, 22)))))
    n_holes = int(rng.poisson(core_area / 1.5e6 * style.holes / scale2))
    for x, y in _sample_points(rng, core_low, n_holes):
        cv2.fillPoly(tears, [_wobbly_polygon(rng, x, y, style.length(rng.uniform(10, 45)), rng.uniform(1, 2.5),
                                             rng.uniform(0, np.pi), wobble=0.12)], 255)
    cracks = 0
    if style.flag("crushed") and bone_low.any():
        # Crushed trabeculae: short straight cracks across the bone, opened a few pixels.
        cracks = int(rng.integers(4, 16) * max(1.0, core_area / 3e6))
        crack_mask = np.zeros(shape, np.uint8)
        for x, y in _sample_points(rng, bone_low, cracks):
            walk = _random_walk(rng, x, y, rng.uniform(0, np.pi), style.length(rng.uniform(30, 140)),
                                step=style.length(6), turn=0.35)
            cv2.polylines(crack_mask, [walk], False, 255, max(1, int(style.length(rng.uniform(1.5, 5)))))
        tears |= crack_mask & (upsample(bone_low.astype(np.float32), shape) > 0.5).view(np.uint8) * 255
    inner = marrow_low & (core_field > style.length(40))
    n_lumens = int(rng.poisson(core_area / 1.0e6 * style.lumens / scale2))
    blood = np.zeros(shape, np.uint8)
    for x, y in _sample_points(rng, inner, n_lumens):
        radius = max(6.0, style.length(style.lumen_radius) * math.exp(rng.normal(0, 0.5)))
        radius = min(radius, 0.22 * core_thickness)  # a lumen never swallows the core
        aspect = rng.uniform(1, 1.7) if rng.random() < 0.6 else rng.uniform(1.7, 4.0)  # sinusoids are long
        polygon = _wobbly_polygon(rng, x, y, radius, aspect, rng.uniform(0, np.pi), wobble=rng.uniform(0.04, 0.16))
        one = np.zeros(shape, np.uint8)
        cv2.fillPoly(one, [polygon], 255)
        lumen |= one
        if style.flag("lumen_wall") or rng.random() < 0.3:
            cv2.polylines(wall, [polygon], True, 255, max(1, int(round(style.length(rng.uniform(1.0, 5.0))))))
        if style.flag("lumen_blood") and rng.random() < 0.6:
            # Blood pooled in part of the lumen (a sediment on one side, or a clot).
            x0, y0, w0, h0 = cv2.boundingRect(polygon)
            if w0 > 2 and h0 > 2:
                local = smooth_noise(rng, (h0, w0), max(2.0, min(w0, h0) / 3))
                fill = local > rng.uniform(-0.6, 0.8)
                window = blood[y0:y0 + h0, x0:x0 + w0]
                window[fill[: window.shape[0], : window.shape[1]]] = 255
    blood &= lumen
    info = {"tears": n_tears, "holes": n_holes, "lumens": n_lumens, "cracks": cracks}
    return tears > 0, lumen > 0, wall > 0, blood > 0, info


def _fat_cells(rng: np.random.Generator, style: Style, shape: tuple[int, int],
               fat_bias: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adipocytes: Voronoi cells of a thinned jittered grid, rounded off, and which of them hold fat.

    The grid pitch follows the drawn adipocyte diameter and a smooth
    keep-probability thins it regionally, so cells are polygonal and packed
    with regional size variation. A cell's vacuole is its Voronoi polygon cut by
    a disc around the seed: packed fat stays polygonal, a lone adipocyte among
    haematopoietic cells turns round. Returns the fat mask, the boundaries
    between cells, and the cells that are partly collapsed.
    """
    height, width = shape
    diameter = style.length(style.adipocyte_diameter)
    pitch = max(6.0, diameter * rng.uniform(0.7, 0.85))
    gy, gx = np.mgrid[0:height + pitch:pitch, 0:width + pitch:pitch]
    sy = gy + rng.uniform(-0.45, 0.45, gy.shape) * pitch
    sx = gx + rng.uniform(-0.45, 0.45, gx.shape) * pitch
    keep_field = smooth_noise(rng, gy.shape, max(1.5, style.length(40) * 13 / pitch))
    keep = rng.random(gy.shape) < np.clip(0.55 + 0.22 * keep_field + rng.uniform(-0.15, 0.15), 0.22, 0.9)
    fat_field = smooth_noise(rng, gy.shape, max(1.5, style.length(rng.uniform(250, 600)) / pitch))
    fat_prob = 1 / (1 + np.exp(-(fat_field + fat_bias) / 0.45))
    fat = rng.random(gy.shape) < fat_prob
    radius = rng.uniform(0.65, 1.2, gy.shape) * pitch
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
    collapsed_cell = np.zeros(int(cell.max()) + 1, bool)
    collapsed_cell[cell[sy, sx]] = fat & (rng.random(fat.shape) < style.collapsed)
    return fat_cells, boundary, collapsed_cell[cell] & fat_cells


def _streaks(rng: np.random.Generator, style: Style, shape: tuple[int, int], where: np.ndarray,
             share: float) -> np.ndarray:
    """Long wavy bands starting inside the low-resolution mask `where`, about `share` of its area."""
    mask = np.zeros(shape, np.uint8)
    if share <= 0 or not where.any():
        return mask > 0
    area = float(where.sum()) * LOW * LOW * share
    width = style.length(rng.uniform(6, 22))
    length = style.length(rng.uniform(150, 600))
    count = max(1, int(area / (width * length)))
    for x, y in _sample_points(rng, where, count):
        walk = _random_walk(rng, x, y, rng.uniform(0, np.pi), length, step=style.length(10), turn=0.12)
        cv2.polylines(mask, [walk], False, 255, max(1, int(width)))
    return mask > 0


def _patches(rng: np.random.Generator, style: Style, shape: tuple[int, int], share: float) -> np.ndarray:
    """Irregular blotches covering about `share` of the image (haemorrhage)."""
    if share <= 0:
        return np.zeros(shape, bool)
    field = smooth_noise(rng, shape, style.length(rng.uniform(120, 400)))
    return field > NormalDist().inv_cdf(1 - share)


def build_geometry(rng: np.random.Generator, height: int, width: int, style: Style | None = None) -> Geometry:
    """Draw the layout of one biopsy in a landscape frame (height <= width)."""
    style = style if style is not None else draw_style(rng, TRAIN)
    shape = (height, width)
    lh, lw = math.ceil(height / LOW), math.ceil(width / LOW)
    core_field, params = _core_field(rng, style, height, width, lh, lw)
    core_low = core_field > 0
    bone_field, bone_info = _bone_field(rng, style, core_low, core_field, params)
    params.update(bone_info)
    core = upsample(core_field, shape) > 0
    bone_full = upsample(bone_field, shape)
    if style.erosion > 0.5 and (bone_field > 0).any():
        # Eroded (scalloped) edges: small bays bitten into the bone surface, at full resolution.
        bays = smooth_noise(rng, shape, style.length(rng.uniform(8, 16)))
        bone_full -= style.length(style.erosion) * np.maximum(bays, 0)
    bone = (bone_full > 0) & core
    marrow_low = core_low & (bone_field < -20)
    tears, lumen, wall, blood, hole_info = _holes(rng, style, shape, core_low, core_field, marrow_low,
                                                  bone_field > 0, float(core.sum()), params["core_thickness"])
    params.update(hole_info)
    background_inside = tears | (lumen & ~wall & ~blood & ~bone)
    tissue = core & ~background_inside
    bone &= tissue
    marrow = tissue & ~bone
    wall &= marrow
    blood &= marrow & ~wall
    # Retraction gaps: thin white clefts in the marrow along parts of the bone edge (fat, by convention).
    gaps = np.zeros(shape, bool)
    bone_distance = np.zeros(shape, np.float32)
    if bone.any():
        outside = cv2.distanceTransform((~bone).astype(np.uint8), cv2.DIST_L2, 3)
        width_field = upsample(style.length(rng.uniform(1.5, 6.0))
                               * (1 + 0.4 * smooth_noise(rng, (lh, lw), style.length(200) / LOW)), shape)
        share = float(style.retraction)
        along = upsample(smooth_noise(rng, (lh, lw), style.length(150) / LOW), shape) > NormalDist().inv_cdf(
            1 - max(share, 1e-6))
        gaps = (outside > 0) & (outside <= width_field) & along & marrow & ~wall & ~blood
        # A cleft stays inside the section: never open onto the slide or a tear.
        gaps &= cv2.erode(tissue.view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                          borderValue=0) > 0
        bone_distance = cv2.distanceTransform(bone.astype(np.uint8), cv2.DIST_L2, 3)
    params["retraction_share"] = float(gaps.sum() / max(bone.sum(), 1))
    # Haemorrhage and fibrosis: marrow that is as pink as bone, still "other".
    haemorrhage = _patches(rng, style, shape, float(style.haemorrhage)) & marrow & ~gaps & ~wall
    fibrosis = _streaks(rng, style, shape, marrow_low, float(style.fibrosis)) & marrow & ~gaps & ~wall & ~haemorrhage
    blood |= haemorrhage
    fat_bias = float(style.fat_bias)
    params["fat_bias"] = fat_bias
    fat_cells, boundary, collapsed = _fat_cells(rng, style, shape, fat_bias)
    fat_cells &= marrow & ~gaps & ~wall & ~blood
    # Fibrosis lies in cellular marrow, between fat cells at most, never cutting through a fat sheet.
    near_fat = cv2.dilate(fat_cells.view(np.uint8), np.ones((3, 3), np.uint8), iterations=2) > 0
    fibrosis &= ~near_fat | (cv2.blur(fat_cells.astype(np.float32), (31, 31)) < 0.3)
    fat_cells &= ~fibrosis
    # Every vacuole is closed: a membrane on its cell boundaries and wherever it meets anything else.
    thickness = max(1, int(round(style.length(style.membrane_width) * 0.8)))
    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    eroded = cv2.erode(fat_cells.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edges = boundary
    if thickness > 1:
        edges = cv2.dilate(boundary.view(np.uint8), np.ones((thickness, thickness), np.uint8)) > 0
    membrane = fat_cells & (edges | (eroded == 0))
    if collapsed.any():
        # A partly collapsed adipocyte: its membrane wrinkles into folds across the vacuole.
        folds = np.abs(smooth_noise(rng, shape, max(2.0, style.length(style.adipocyte_diameter) / 4))) < 0.12
        membrane |= collapsed & folds & fat_cells
    vacuole = (fat_cells & ~membrane) | gaps
    labels = np.zeros(shape, np.uint8)
    labels[tissue] = OTHER
    labels[bone] = BONE
    labels[fat_cells | gaps] = FAT
    params["collapsed_cells"] = bool(collapsed.any())
    return Geometry(labels=labels, tissue=tissue, bone=bone, vacuole=vacuole, membrane=membrane,
                    marrow=marrow & ~fat_cells & ~gaps & ~wall & ~blood & ~fibrosis, wall=wall, blood=blood,
                    fibrosis=fibrosis, bone_distance=bone_distance, params=params)
