"""Paint a biopsy's geometry as an H&E scan.

Colour follows the Beer-Lambert model stain separation uses: every pixel holds a
haematoxylin and an eosin concentration, and the transmitted light is
I0 * exp(-(cH * vH + cE * vE)) per channel. The image's `Style` sets the stain
vectors (blue to purple haematoxylin, magenta to orange eosin), the
concentrations per structure, the strength of each stain and its drift across
the slide, the lamp's brightness and white balance, the glass tint, focus and
noise. The ranges overlap on purpose: marrow can be as pink as bone and bone as
purple as marrow, so texture, not hue, has to tell them apart. Artefacts on the
glass and of the scanner come afterwards (artefacts.py); tissue folds, which
double the stain, come here.
"""
from __future__ import annotations

import cv2
import numpy as np

from bonemarrow.training.synth.geometry import Geometry
from bonemarrow.training.synth.noise import smooth_noise
from bonemarrow.training.synth.style import Style, lamp_rgb, stain_vectors


def _blobs(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Standardised blurred white noise: its peaks are round blobs about 2.5 * sigma across."""
    white = rng.random(shape, dtype=np.float32)
    field = cv2.GaussianBlur(white, (0, 0), max(0.5, sigma))
    sample = field[::7, ::7]
    return (field - float(sample.mean())) / (float(sample.std()) or 1.0)


def _stretched_blobs(rng: np.random.Generator, shape: tuple[int, int], sigma: float, stretch: float,
                     angle_field: np.ndarray) -> np.ndarray:
    """Elongated blobs (fibroblast nuclei, fibres): blur along x, then rotate by a slowly varying angle."""
    white = rng.random(shape, dtype=np.float32)
    horizontal = cv2.GaussianBlur(white, (0, 0), sigmaX=max(0.5, sigma * stretch), sigmaY=max(0.5, sigma))
    vertical = cv2.GaussianBlur(white, (0, 0), sigmaX=max(0.5, sigma), sigmaY=max(0.5, sigma * stretch))
    mix = 0.5 + 0.5 * np.cos(2 * angle_field)
    field = horizontal * mix + vertical * (1 - mix)
    sample = field[::7, ::7]
    return (field - float(sample.mean())) / (float(sample.std()) or 1.0)


def _centres(rng: np.random.Generator, mask: np.ndarray, per_megapixel: float) -> np.ndarray:
    """A uint8 map with 255 at random points inside `mask` (about `per_megapixel` per million pixels)."""
    height, width = mask.shape
    count = int(rng.poisson(max(per_megapixel, 0.0) * height * width / 1e6))
    canvas = np.zeros(mask.shape, np.uint8)
    if count:
        canvas[rng.integers(0, height, count), rng.integers(0, width, count)] = 255
        canvas &= mask.view(np.uint8) * 255
    return canvas


def _discs(centres: np.ndarray, radius: float) -> np.ndarray:
    """Float32 map of filled discs of `radius` px around the points of a `_centres` map."""
    radius = max(1, int(round(radius)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(centres, kernel).astype(np.float32) / 255


def _spots(rng: np.random.Generator, mask: np.ndarray, per_megapixel: float, radius: float) -> np.ndarray:
    """Float32 map of filled discs of `radius` px scattered inside `mask`."""
    return _discs(_centres(rng, mask, per_megapixel), radius)


def _set(field: np.ndarray, index: np.ndarray, values) -> None:
    field.ravel()[index] = values


def _marrow(rng: np.random.Generator, style: Style, shape: tuple[int, int],
            texture: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Haematopoietic marrow everywhere (other tissues overwrite it): (c_h, c_e, nuclei, small nuclei)."""
    stroma = smooth_noise(rng, shape, style.length(140))
    stroma *= 0.8
    stroma -= rng.uniform(0.3, 1.6)
    np.clip(stroma, 0, 1, out=stroma)
    threshold = smooth_noise(rng, shape, style.length(260))
    threshold *= -0.35
    threshold += style.nuclear_density
    threshold += 1.5 * stroma
    size = style.length(style.nucleus_size)
    small = _blobs(rng, shape, size)
    small -= threshold
    small *= 2.5
    np.clip(small, 0, 1, out=small)
    large = _blobs(rng, shape, 1.7 * size)
    large -= threshold
    large -= 0.9
    large *= 2.0
    np.clip(large, 0, 1, out=large)
    nuclei = np.maximum(small, large)
    nuclei *= 0.6
    # Round nuclei as well: dark small ones (lymphocytes, erythroblasts), paler large ones (myeloid cells).
    radius = style.length(style.nucleus_size) * 1.4
    cover = float(np.clip(1.1 - style.nuclear_density, 0.1, 0.8)) * 0.5
    cellular = smooth_noise(rng, shape, style.length(200)) > rng.uniform(-1.2, 0.2)
    centres = _centres(rng, cellular, cover / (np.pi * radius**2) * 1e6)
    dark = _discs(centres & (rng.random(shape) < 0.6).view(np.uint8) * 255, radius)
    pale = _discs(centres, radius * 1.5) * 0.55
    np.maximum(nuclei, np.maximum(dark, pale), out=nuclei)
    nuclei = cv2.GaussianBlur(nuclei, (0, 0), 0.5)
    red_cells = _blobs(rng, shape, style.length(0.8))
    red_cells -= style.red_cells
    red_cells *= 3
    np.clip(red_cells, 0, 1, out=red_cells)
    cyto = texture * 0.3
    cyto += 1
    c_h = cyto * style.marrow_haematoxylin
    c_h += rng.uniform(0.9, 1.5) * nuclei
    c_e = cyto * style.marrow_eosin
    c_e += 0.25 * stroma
    c_e *= 1 - 0.4 * nuclei
    c_e += 0.6 * red_cells
    return c_h, c_e, nuclei, small


def _bone(rng: np.random.Generator, style: Style, geometry: Geometry, texture: np.ndarray,
          c_h: np.ndarray, c_e: np.ndarray) -> None:
    """Bone: homogeneous eosin with lamellae parallel to the surface, cement lines and osteocyte lacunae."""
    shape = geometry.labels.shape
    bone = np.flatnonzero(geometry.bone)
    if not bone.size:
        return
    period = style.length(rng.uniform(5, 10))
    phase = smooth_noise(rng, shape, style.length(150)).ravel()[bone]
    lamellae = np.sin(geometry.bone_distance.ravel()[bone] * np.float32(2 * np.pi / period) + 2.5 * phase)
    radius = style.length(1.2)
    centres = _centres(rng, geometry.bone, style.lacunae / max(style.scale, 0.5) ** 2)
    lacunae = _discs(centres, radius + 1).ravel()[bone]
    occupied = centres & (rng.random(shape) < rng.uniform(0.4, 0.9)).view(np.uint8) * 255
    nuclei = _discs(occupied, radius * 0.7).ravel()[bone]
    e_bone = style.bone_eosin * (1 + style.lamellae * lamellae + 0.05 * texture.ravel()[bone])
    h_bone = style.bone_haematoxylin * (1 + 0.08 * texture.ravel()[bone]) + rng.uniform(0.01, 0.05)
    if style.cement_lines > 0.05:
        # Cement lines: thin, wavy, haematoxylin-dark lines where bone was laid down in episodes.
        wavy = np.abs(smooth_noise(rng, shape, style.length(rng.uniform(40, 90)))).ravel()[bone]
        line = np.clip(1 - wavy / (0.03 + 0.03 * style.cement_lines), 0, 1) * (style.cement_lines > rng.random())
        h_bone = h_bone + 0.35 * line
        e_bone = e_bone * (1 + 0.15 * line)
    # A lacuna is a small clear space; most hold an osteocyte's dark nucleus.
    _set(c_e, bone, e_bone * (1 - 0.85 * lacunae))
    _set(c_h, bone, h_bone * (1 - 0.85 * lacunae) + 0.9 * nuclei)


def _fold(rng: np.random.Generator, geometry: Geometry) -> np.ndarray:
    """A tissue fold: a band across the core where the section lies double (stain x ~2)."""
    height, width = geometry.labels.shape
    band = np.zeros((height, width), np.uint8)
    x = rng.uniform(0.1, 0.9) * width
    angle = np.pi / 2 + rng.normal(0, 0.4)
    half = rng.uniform(10, 60)
    dx, dy = np.cos(angle) * height, np.sin(angle) * height
    points = np.array([[x - dx, height / 2 - dy], [x + dx, height / 2 + dy]], np.int32)
    cv2.polylines(band, [points], False, 255, int(2 * half))
    soft = cv2.GaussianBlur(band.astype(np.float32) / 255, (0, 0), 3)
    return 1 + rng.uniform(0.6, 1.0) * soft * geometry.tissue


def paint(rng: np.random.Generator, geometry: Geometry, style: Style) -> np.ndarray:
    """Render the geometry as an (H, W, 3) uint8 RGB H&E image."""
    shape = geometry.labels.shape
    texture = smooth_noise(rng, shape, style.length(rng.uniform(6, 14)))
    c_h, c_e, nuclei, small = _marrow(rng, style, shape, texture)

    # Megakaryocytes: rare large cells, pink cytoplasm around a dark lobulated nucleus.
    mega = _spots(rng, geometry.marrow, style.megakaryocytes, style.length(rng.integers(6, 14)))
    if mega.any():
        c_e += 0.2 * mega
        c_h += 1.1 * _spots(rng, mega > 0, 8000.0 / max(style.scale, 0.5) ** 2, style.length(3))

    # Blood (haemorrhage, blood pooled in lumens): packed red cells, each a small eosin-bright disc.
    blood = np.flatnonzero(geometry.blood)
    if blood.size:
        radius = style.length(rng.uniform(1.5, 2.1))
        packing = rng.uniform(0.6, 1.6) / (np.pi * radius**2) * 1e6
        cells = cv2.GaussianBlur(_discs(_centres(rng, geometry.blood, packing), radius), (0, 0), 0.6).ravel()[blood]
        _set(c_e, blood, rng.uniform(0.65, 1.1) * (0.35 + 0.65 * cells))
        _set(c_h, blood, rng.uniform(0.01, 0.06) + 0.5 * small.ravel()[blood] * (rng.random() < 0.3))

    # Fibrosis: pale, wavy collagen fibres with gaps between them and spindle-shaped nuclei.
    fibres = np.flatnonzero(geometry.fibrosis)
    if fibres.size:
        angle = smooth_noise(rng, shape, style.length(200)) * 1.5
        strands = _stretched_blobs(rng, shape, style.length(1.0), 6.0, angle).ravel()[fibres]
        spindle = np.clip((_stretched_blobs(rng, shape, style.length(1.2), 3.5, angle).ravel()[fibres] - 2.0) * 2, 0, 1)
        # Fibres replace most of the cells; the marrow shows through between them.
        _set(c_e, fibres, 0.35 * c_e.ravel()[fibres] + rng.uniform(0.1, 0.3) * np.clip(1 + 0.7 * strands, 0.15, 2.5))
        _set(c_h, fibres, 0.3 * c_h.ravel()[fibres] + rng.uniform(0.02, 0.06) + 1.0 * spindle)

    _bone(rng, style, geometry, texture, c_h, c_e)

    # Adipocyte membranes and vessel walls; vacuoles, lumens, tears and slide are empty glass.
    membrane = np.flatnonzero(geometry.membrane)
    _set(c_e, membrane, style.membrane_eosin * (1 + 0.3 * texture.ravel()[membrane]))
    _set(c_h, membrane, rng.uniform(0.03, 0.16) * (0.3 + style.membrane_eosin))
    wall = np.flatnonzero(geometry.wall)
    _set(c_e, wall, rng.uniform(0.3, 0.6))
    _set(c_h, wall, rng.uniform(0.2, 0.45) + 0.6 * small.ravel()[wall])
    glass = np.flatnonzero(~geometry.tissue | geometry.vacuole)
    _set(c_e, glass, rng.uniform(0.0, 0.03) * (1 + 0.3 * texture.ravel()[glass]))
    _set(c_h, glass, rng.uniform(0.0, 0.015))

    # Stain strength per image and drifting slowly across the section.
    for field, strength in ((c_h, style.haematoxylin_strength), (c_e, style.eosin_strength)):
        drift = smooth_noise(rng, shape, 900)
        drift *= style.stain_drift
        drift += 1
        np.clip(drift, 0.3, None, out=drift)
        drift *= strength
        field *= drift
    if style.flag("fold"):
        fold = _fold(rng, geometry)
        c_h *= fold
        c_e *= fold

    # Focus: a base blur everywhere and a softer blur over slowly varying regions (on the stain
    # densities, which is cheaper than on RGB and looks the same).
    sigma = style.blur
    softer = sigma + style.soft_focus
    weight = smooth_noise(rng, shape, 1200)
    weight *= 0.5
    weight += 0.5 - rng.uniform(0.0, 1.0)
    np.clip(weight, 0, 1, out=weight)
    keep = 1 - weight
    c_h = cv2.blendLinear(cv2.GaussianBlur(c_h, (0, 0), sigma), cv2.GaussianBlur(c_h, (0, 0), softer), keep, weight)
    c_e = cv2.blendLinear(cv2.GaussianBlur(c_e, (0, 0), sigma), cv2.GaussianBlur(c_e, (0, 0), softer), keep, weight)

    # Sensor noise (in optical density, i.e. proportional to brightness), the glass tint and the lamp.
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= style.noise
    v_h, v_e = stain_vectors(style)
    glass_od = style.glass_density + np.array([0.0, 0.3, 1.0]) * style.glass_yellow
    lamp = lamp_rgb(style)
    vignette = np.abs(smooth_noise(rng, shape, 2000))
    vignette *= -rng.uniform(0, 0.03)
    vignette += 1
    rgb = np.empty((*shape, 3), np.uint8)
    for channel in range(3):
        density = c_h * np.float32(-v_h[channel])
        density -= np.float32(v_e[channel]) * c_e
        density -= noise
        density -= np.float32(glass_od[channel])
        light = cv2.exp(density)
        light *= vignette
        light *= np.float32(lamp[channel])
        np.clip(light, 0, 255, out=light)
        rgb[..., channel] = light
    return rgb
