"""Paint a biopsy's geometry as an H&E scan.

Colour follows the Beer-Lambert model stain separation uses: every pixel holds a
haematoxylin and an eosin concentration, and the transmitted light is
I0 * exp(-(cH * vH + cE * vE)) per channel. Varying the stain vectors, the
concentrations and the lamp per image (and slowly within an image) gives the
stain and brightness spread of real batches; blur and sensor noise come last.
"""
from __future__ import annotations

import cv2
import numpy as np

from bonemarrow.training.synth.geometry import Geometry
from bonemarrow.training.synth.noise import smooth_noise

# Optical density per unit concentration (R, G, B), after Ruifrok & Johnston, nudged so
# that eosin reads pink rather than magenta, as in the hospital's scans.
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29])
EOSIN = np.array([0.10, 0.85, 0.45])


def _stain_vector(rng: np.random.Generator, base: np.ndarray, spread: float) -> np.ndarray:
    vector = np.clip(base / np.linalg.norm(base) + rng.normal(0, spread, 3), 0.02, None)
    return vector / np.linalg.norm(vector)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Standardised blurred white noise: its peaks are round blobs about 2.5 * sigma across."""
    white = rng.random(shape, dtype=np.float32)
    field = cv2.GaussianBlur(white, (0, 0), sigma)
    sample = field[::7, ::7]
    return (field - float(sample.mean())) / (float(sample.std()) or 1.0)


def _spots(rng: np.random.Generator, mask: np.ndarray, per_megapixel: float, radius: int) -> np.ndarray:
    """Float32 map of filled discs of `radius` px scattered inside `mask`."""
    height, width = mask.shape
    count = int(rng.poisson(per_megapixel * height * width / 1e6))
    canvas = np.zeros(mask.shape, np.uint8)
    if count:
        ys = rng.integers(0, height, count)
        xs = rng.integers(0, width, count)
        canvas[ys, xs] = 255
        canvas &= mask.view(np.uint8) * 255
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        canvas = cv2.dilate(canvas, kernel)
    return canvas.astype(np.float32) / 255


def _set(field: np.ndarray, index: np.ndarray, values) -> None:
    field.ravel()[index] = values


def paint(rng: np.random.Generator, geometry: Geometry) -> np.ndarray:
    """Render the geometry as an (H, W, 3) uint8 RGB H&E image."""
    shape = geometry.labels.shape
    texture = smooth_noise(rng, shape, rng.uniform(6, 14))

    # Haematopoietic marrow: pink-purple cytoplasm crowded with nuclei, with some red cells and stroma.
    # It is computed everywhere (the cheapest way to fill most of the core); other tissues overwrite it.
    stroma = smooth_noise(rng, shape, 140)
    stroma *= 0.8
    stroma -= rng.uniform(0.3, 1.6)
    np.clip(stroma, 0, 1, out=stroma)
    threshold = smooth_noise(rng, shape, 260)
    threshold *= -0.35
    threshold += rng.uniform(0.35, 0.85)
    threshold += 1.5 * stroma
    small = _blobs(rng, shape, 1.0)
    small -= threshold
    small *= 2.5
    np.clip(small, 0, 1, out=small)
    large = _blobs(rng, shape, 1.7)
    large -= threshold
    large -= 0.9
    large *= 2.0
    np.clip(large, 0, 1, out=large)
    nuclei = np.maximum(small, large, out=large)
    red_cells = _blobs(rng, shape, 0.8)
    red_cells -= rng.uniform(1.9, 2.6)
    red_cells *= 3
    np.clip(red_cells, 0, 1, out=red_cells)
    cyto = texture * 0.3
    cyto += 1
    c_h = cyto * rng.uniform(0.10, 0.22)
    c_h += rng.uniform(0.9, 1.5) * nuclei
    c_e = cyto * rng.uniform(0.16, 0.30)
    c_e += 0.25 * stroma
    c_e *= 1 - 0.4 * nuclei
    c_e += 0.6 * red_cells

    # Megakaryocytes: rare large cells, pink cytoplasm around a dark lobulated nucleus.
    mega = _spots(rng, geometry.marrow, rng.uniform(0, 12), int(rng.integers(6, 10)))
    if mega.any():
        c_e += 0.2 * mega
        c_h += 1.1 * _spots(rng, mega > 0, 8000.0, 3)

    # Bone: homogeneous eosin with faint lamellae parallel to the surface and sparse osteocytes.
    bone = np.flatnonzero(geometry.bone)
    if bone.size:
        period = rng.uniform(5, 10)
        phase = smooth_noise(rng, shape, 150).ravel()[bone]
        lamellae = np.sin(geometry.bone_distance.ravel()[bone] * np.float32(2 * np.pi / period) + 2.5 * phase)
        osteocytes = _spots(rng, geometry.bone, rng.uniform(300, 900), 1).ravel()[bone]
        e_bone = rng.uniform(0.45, 0.85) * (1 + 0.05 * lamellae + 0.05 * texture.ravel()[bone])
        _set(c_e, bone, e_bone * (1 - 0.5 * osteocytes))
        _set(c_h, bone, rng.uniform(0.02, 0.08) + 0.9 * osteocytes)

    # Adipocyte membranes and vessel walls; vacuoles, lumens, tears and slide are empty glass.
    membrane = np.flatnonzero(geometry.membrane)
    _set(c_e, membrane, rng.uniform(0.22, 0.45) * (1 + 0.3 * texture.ravel()[membrane]))
    _set(c_h, membrane, rng.uniform(0.06, 0.16))
    wall = np.flatnonzero(geometry.wall)
    _set(c_e, wall, rng.uniform(0.35, 0.55))
    _set(c_h, wall, rng.uniform(0.25, 0.45) + 0.6 * small.ravel()[wall])
    glass = np.flatnonzero(~geometry.tissue | geometry.vacuole)
    _set(c_e, glass, rng.uniform(0.0, 0.03) * (1 + 0.3 * texture.ravel()[glass]))
    _set(c_h, glass, rng.uniform(0.0, 0.015))

    # Stain strength per image and drifting slowly across the section.
    for field in (c_h, c_e):
        drift = smooth_noise(rng, shape, 900)
        drift *= rng.uniform(0.0, 0.2)
        drift += 1
        drift *= rng.uniform(0.7, 1.3)
        field *= drift

    # Focus: a base blur everywhere and a softer blur over slowly varying regions (on the stain
    # densities, which is cheaper than on RGB and looks the same).
    sigma = rng.uniform(0.4, 1.2)
    softer = sigma + rng.uniform(0.3, 1.5)
    weight = smooth_noise(rng, shape, 1200)
    weight *= 0.5
    weight += 0.5 - rng.uniform(0.0, 1.0)
    np.clip(weight, 0, 1, out=weight)
    keep = 1 - weight
    c_h = cv2.blendLinear(cv2.GaussianBlur(c_h, (0, 0), sigma), cv2.GaussianBlur(c_h, (0, 0), softer), keep, weight)
    c_e = cv2.blendLinear(cv2.GaussianBlur(c_e, (0, 0), sigma), cv2.GaussianBlur(c_e, (0, 0), softer), keep, weight)

    # Sensor noise (in optical density, i.e. proportional to brightness) and the lamp.
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= rng.uniform(0.004, 0.016)
    v_h = _stain_vector(rng, HAEMATOXYLIN, 0.05)
    v_e = _stain_vector(rng, EOSIN, 0.05)
    lamp = rng.uniform(236, 252) + rng.uniform(-4, 4, 3)
    vignette = np.abs(smooth_noise(rng, shape, 2000))
    vignette *= -rng.uniform(0, 0.03)
    vignette += 1
    rgb = np.empty((*shape, 3), np.uint8)
    for channel in range(3):
        density = c_h * np.float32(-v_h[channel])
        density -= np.float32(v_e[channel]) * c_e
        density -= noise
        light = cv2.exp(density)
        light *= vignette
        light *= np.float32(lamp[channel])
        np.clip(light, 0, 255, out=light)
        rgb[..., channel] = light
    return rgb
