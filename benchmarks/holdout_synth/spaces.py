"""White spaces inside the tissue that are background: vessel lumens, tears and holes.

Sinusoids, veins and arterioles are explicit irregular polygons with a wall
(class other) drawn on their outline; some hold a clump of red cells (class
other, by this generator's convention). Tears are wandering tapered lines and
holes are ragged polygons (tissue that fell out). Their sizes deliberately
overlap those of adipocytes, so size alone cannot tell fat from background.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import (dilate, draw_polylines, erode, fill_polygons, radial_polygon, random_walk_curve,
                       sample_in_mask)
from .params import SlideParams, count_for


@dataclass
class Spaces:
    lumen: np.ndarray        # (H, W) bool: vessel lumens (background)
    wall: np.ndarray         # (H, W) bool: vessel walls (other)
    thick_wall: np.ndarray   # (H, W) bool: the muscular part of arteriole walls
    blood: np.ndarray        # (H, W) bool: where red cells settle inside lumens
    tears: np.ndarray        # (H, W) bool
    holes: np.ndarray        # (H, W) bool
    lumen_diameters: list[float] = field(default_factory=list)


def _vessel_shape(rng: np.random.Generator, kind: str, s: float) -> tuple[float, float, float, int]:
    """(radius, aspect, roughness, wall px) of one vessel."""
    if kind == "small":
        return rng.uniform(8, 18) * s, rng.uniform(1.3, 3.0), 0.25, 1
    if kind == "sinusoid":
        return float(np.exp(rng.uniform(np.log(9), np.log(50)))) * s, rng.uniform(1.3, 3.2), 0.45, 1
    if kind == "arteriole":
        return rng.uniform(5, 22) * s, rng.uniform(1.0, 1.6), 0.08, max(int(rng.uniform(4, 11) * s), 2)
    return float(np.exp(rng.uniform(np.log(35), np.log(130)))) * s, rng.uniform(1.0, 2.5), 0.4, int(rng.integers(1, 3))


def make_spaces(rng: np.random.Generator, core: np.ndarray, bone: np.ndarray, avoid: np.ndarray,
                p: SlideParams) -> Spaces:
    h, w = core.shape
    s = p.scale
    marrow = core & ~bone
    room = erode(core, 6 * s) & ~dilate(bone, 2)
    area = float(marrow.sum())
    count = int(rng.poisson(p.vessel_density * area / (300 * s) ** 2))
    kinds = ["small", "small"] + list(rng.choice(["sinusoid", "arteriole", "vein"], count, p=[0.7, 0.17, 0.13]))
    lumen = np.zeros((h, w), np.uint8)
    wall = np.zeros((h, w), np.uint8)
    thick = np.zeros((h, w), np.uint8)
    blood = np.zeros((h, w), np.uint8)
    taken = avoid.copy()
    diameters = []
    room_y, room_x = np.nonzero(room)
    for kind in kinds:
        radius, aspect, rough, wall_px = _vessel_shape(rng, kind, s)
        for _ in range(25 if len(room_x) else 0):
            pick = int(rng.integers(0, len(room_x)))
            cx, cy = float(room_x[pick]), float(room_y[pick])
            if taken[int(cy), int(cx)]:
                continue
            poly = radial_polygon(rng, cx, cy, radius, aspect=aspect, angle=rng.uniform(0, np.pi), roughness=rough)
            reach = int(radius * max(aspect, 1 / aspect) ** 0.5 + wall_px + 4)
            x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, w)
            y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, h)
            local = fill_polygons((y1 - y0, x1 - x0), [poly - (x0, y0)]) > 0
            local_wall = draw_polylines(np.zeros_like(local, np.uint8), [poly - (x0, y0)], 1,
                                        2 * wall_px - 1 if wall_px > 1 else 1, closed=True) > 0
            footprint = local | local_wall
            outside = (footprint & ~room[y0:y1, x0:x1]).sum() > 0.03 * footprint.sum()
            if outside or (footprint & taken[y0:y1, x0:x1]).any():
                continue
            inner = local & ~local_wall
            if inner.sum() < 6:
                continue
            lumen[y0:y1, x0:x1] |= inner
            wall[y0:y1, x0:x1] |= local_wall & ~inner
            if kind == "arteriole":
                thick[y0:y1, x0:x1] |= local_wall & ~inner
            taken[y0:y1, x0:x1] |= dilate(footprint, 3 * s)
            diameters.append(float(2 * np.sqrt(inner.sum() / np.pi)))
            if kind != "arteriole" and rng.random() < 0.4:
                # Red cells settle in a clump against one side of the lumen.
                fill = rng.uniform(0.1, 0.8)
                ex, ey = sample_in_mask(rng, inner, 1)[0]
                clump = radial_polygon(rng, ex + x0, ey + y0, radius * np.sqrt(fill) * 1.2, aspect=aspect,
                                       angle=rng.uniform(0, np.pi), roughness=0.3)
                local_clump = fill_polygons((y1 - y0, x1 - x0), [clump - (x0, y0)]) > 0
                blood[y0:y1, x0:x1] |= local_clump & inner
            break
    tears = np.zeros((h, w), np.uint8)
    for _ in range(count_for(rng, p.tear_rate, area, s)):
        if rng.random() < 0.6:
            start = sample_in_mask(rng, core & ~erode(core, 3), 1)
        else:
            start = sample_in_mask(rng, marrow, 1)
        if not len(start):
            continue
        length = min(rng.uniform(80, 600) * s, 0.4 * w)
        path = random_walk_curve(rng, start[0], rng.uniform(0, 2 * np.pi), length, 3.0, 0.08)
        widest = rng.uniform(2, 12) * s
        pieces = 8
        for k in range(pieces):
            seg = path[k * len(path) // pieces:(k + 1) * len(path) // pieces + 1]
            taper = np.sin(np.pi * (k + 0.5) / pieces)
            draw_polylines(tears, [seg], 1, int(max(widest * taper, 1.5)))
    tears_mask = (tears > 0) & core
    if rng.random() < 0.8:
        tears_mask &= ~bone
    polys = [radial_polygon(rng, x, y, rng.uniform(10, 75) * s, aspect=rng.uniform(1, 2.5),
                            angle=rng.uniform(0, np.pi), roughness=0.45, points=48)
             for x, y in sample_in_mask(rng, room, count_for(rng, p.hole_rate, area, s))]
    holes = (fill_polygons((h, w), polys) > 0) & marrow
    return Spaces(lumen=lumen > 0, wall=wall > 0, thick_wall=thick > 0, blood=blood > 0, tears=tears_mask,
                  holes=holes, lumen_diameters=diameters)
