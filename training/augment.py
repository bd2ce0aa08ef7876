"""Training augmentation in numpy/OpenCV: geometry, colour, H&E stain, elastic.

Geometry (flips, 90-degree and free rotation, scale, elastic deformation) is
composed into one sampling map per crop and applied with a single cv2.remap
(linear for the image, nearest for the labels), so the image is interpolated
once and image and labels stay aligned exactly. Colour jitter works in RGB;
stain jitter works in H&E optical-density space (Ruifrok & Johnston colour
deconvolution), which is how real scans differ from lab to lab.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Ruifrok & Johnston stain vectors (rows: haematoxylin, eosin, DAB) in OD space.
_HED_FROM_RGB_INV = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64
)
_HED_FROM_RGB_INV /= np.linalg.norm(_HED_FROM_RGB_INV, axis=1, keepdims=True)
_RGB_FROM_HED = _HED_FROM_RGB_INV.astype(np.float32)
_HED_FROM_RGB = np.linalg.inv(_HED_FROM_RGB_INV).astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; AugmentConfig.none() turns everything off."""

    flip: bool = True
    rot90: bool = True
    rotate_prob: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.25)
    elastic_prob: float = 0.25
    elastic_alpha: float = 0.06  # displacement amplitude as a share of the crop side
    elastic_sigma: float = 0.08  # smoothness as a share of the crop side
    colour_prob: float = 0.8
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.2
    stain_prob: float = 0.7
    stain_scale: float = 0.1
    stain_shift: float = 0.03

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(flip=False, rot90=False, rotate_prob=0.0, scale_range=(1.0, 1.0), elastic_prob=0.0,
                   colour_prob=0.0, stain_prob=0.0)


def sampling_maps(centre: tuple[float, float], crop: int, rng: np.random.Generator,
                  config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (map_x, map_y), float32 (crop, crop), for every output pixel."""
    angle = 0.0
    if config.rot90:
        angle += 0.5 * math.pi * int(rng.integers(4))
    if rng.random() < config.rotate_prob:
        angle += rng.uniform(-math.pi, math.pi)
    low, high = config.scale_range
    scale = math.exp(rng.uniform(math.log(low), math.log(high)))  # >1 zooms in
    flip = -1.0 if (config.flip and rng.random() < 0.5) else 1.0
    half = (crop - 1) / 2.0
    v, u = np.mgrid[0:crop, 0:crop].astype(np.float32)
    u -= half
    v -= half
    if rng.random() < config.elastic_prob:
        du, dv = elastic_field(crop, rng, config)
        u += du
        v += dv
    u *= flip
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    map_x = cos * u - sin * v + centre[1]
    map_y = sin * u + cos * v + centre[0]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def elastic_field(crop: int, rng: np.random.Generator, config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement field (in output pixels), from coarse noise upsampled."""
    coarse = max(2, int(round(1.0 / config.elastic_sigma)))
    amplitude = config.elastic_alpha * crop
    fields = []
    for _ in range(2):
        noise = rng.standard_normal((coarse, coarse)).astype(np.float32)
        fields.append(cv2.resize(noise, (crop, crop), interpolation=cv2.INTER_CUBIC) * amplitude)
    return fields[0], fields[1]


def colour_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and saturation jitter on a float RGB image in 0..255."""
    image = image * (1.0 + rng.uniform(-config.brightness, config.brightness))
    mean = image.mean()
    image = (image - mean) * (1.0 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = image.mean(axis=2, keepdims=True)
    return (image - grey) * (1.0 + rng.uniform(-config.saturation, config.saturation)) + grey


def stain_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Scale and shift each stain's concentration in H&E optical-density space."""
    od = -np.log(np.clip(image, 1.0, 255.0) / 255.0)
    hed = od.reshape(-1, 3) @ _HED_FROM_RGB
    alpha = rng.uniform(1 - config.stain_scale, 1 + config.stain_scale, 3).astype(np.float32)
    beta = rng.uniform(-config.stain_shift, config.stain_shift, 3).astype(np.float32)
    # Shift only where there is stain, so bare glass stays white.
    hed = hed * alpha + beta * (hed.sum(axis=1, keepdims=True) > 0.05)
    od = np.clip(hed @ _RGB_FROM_HED, 0.0, None)
    return (255.0 * np.exp(-od)).reshape(image.shape)


def augment_crop(image: np.ndarray, labels: np.ndarray, centre: tuple[float, float], crop: int,
                 rng: np.random.Generator, config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (crop x crop) image/label pair around `centre` (y, x) of the source."""
    map_x, map_y = sampling_maps(centre, crop, rng, config)
    # Keep the crop inside the image where possible by shifting (never resampling) it.
    height, width = labels.shape
    shift_x = _inside_shift(map_x, width)
    shift_y = _inside_shift(map_y, height)
    map_x += shift_x
    map_y += shift_y
    out_image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out_labels = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    do_colour = rng.random() < config.colour_prob
    do_stain = rng.random() < config.stain_prob
    if do_colour or do_stain:
        work = out_image.astype(np.float32)
        if do_colour:
            work = colour_jitter(work, rng, config)
        if do_stain:
            work = stain_jitter(work, rng, config)
        out_image = np.clip(work + 0.5, 0, 255).astype(np.uint8)
    return out_image, out_labels


def _inside_shift(coords: np.ndarray, length: int) -> float:
    low, high = float(coords.min()), float(coords.max())
    if high - low > length - 1:
        return (length - 1) / 2.0 - (low + high) / 2.0  # larger than the image: centre it, reflect the rest
    if low < 0:
        return -low
    if high > length - 1:
        return (length - 1) - high
    return 0.0
