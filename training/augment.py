"""Training augmentation in numpy/OpenCV: geometry, scale, colour, H&E stain, optics, compression.

Geometry (flips, 90-degree and free rotation, scale, elastic deformation) is
composed into one sampling map per crop and applied with a single cv2.remap
(linear for the image, nearest for the labels), so the image is interpolated
once and image and labels stay aligned exactly. Zooming out by more than
about 1.4x samples a half-resolution copy of the image, so small crops of a
large scale do not alias.

The photometric steps exist to break shortcuts a synthetic training set
offers: a network must not decide "bone" because a region is pink, or
"background" because a white blob is large. So hue, stain strength, colour,
focus, noise and compression vary far beyond what any one lab produces:
colour jitter works in RGB, stain jitter in H&E optical-density space (Ruifrok
& Johnston colour deconvolution, which is how real scans differ from lab to
lab), hue rotation in HSV; greyscale, blur, noise and JPEG come last.

Named presets (`AUGMENTATIONS`): `robust` (the default), `basic` (the
first release's milder settings, kept for comparison and for fine-tuning on a
lab's own scans) and `none`.
"""
from __future__ import annotations

import dataclasses
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
#: Zoom factors below this sample the half-resolution copy of the image (anti-aliasing).
HALF_RESOLUTION_BELOW = 0.71


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are the `robust` preset."""

    flip: bool = True
    rot90: bool = True
    rotate_prob: float = 0.5
    scale_range: tuple[float, float] = (0.5, 2.0)  # zoom factor, log-uniform; > 1 zooms in
    elastic_prob: float = 0.25
    elastic_alpha: float = 0.06  # displacement amplitude as a share of the crop side
    elastic_sigma: float = 0.08  # smoothness as a share of the crop side
    colour_prob: float = 0.8
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.4
    stain_prob: float = 0.8
    stain_scale: float = 0.35  # each stain's concentration x U(1 - s, 1 + s)
    stain_shift: float = 0.08
    hue_prob: float = 0.5
    hue_degrees: float = 25.0  # hue rotated by U(-d, d)
    grey_prob: float = 0.05
    blur_prob: float = 0.25
    blur_sigma: tuple[float, float] = (0.4, 2.0)
    noise_prob: float = 0.25
    noise_sigma: tuple[float, float] = (2.0, 8.0)  # grey levels
    jpeg_prob: float = 0.25
    jpeg_quality: tuple[int, int] = (30, 90)

    @classmethod
    def basic(cls) -> "AugmentConfig":
        """The first release's settings: mild scale, colour and stain changes, no optics or compression."""
        return cls(scale_range=(0.8, 1.25), brightness=0.15, contrast=0.15, saturation=0.2, stain_prob=0.7,
                   stain_scale=0.1, stain_shift=0.03, hue_prob=0.0, grey_prob=0.0, blur_prob=0.0, noise_prob=0.0,
                   jpeg_prob=0.0)

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(flip=False, rot90=False, rotate_prob=0.0, scale_range=(1.0, 1.0), elastic_prob=0.0,
                   colour_prob=0.0, stain_prob=0.0, hue_prob=0.0, grey_prob=0.0, blur_prob=0.0, noise_prob=0.0,
                   jpeg_prob=0.0)

    def geometry_only(self) -> "AugmentConfig":
        """The same geometry with every photometric step off (tests of alignment use it)."""
        return dataclasses.replace(self, colour_prob=0.0, stain_prob=0.0, hue_prob=0.0, grey_prob=0.0,
                                   blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)


AUGMENTATIONS: dict[str, AugmentConfig] = {
    "robust": AugmentConfig(),
    "basic": AugmentConfig.basic(),
    "none": AugmentConfig.none(),
}


def augmentation(name: str) -> AugmentConfig:
    try:
        return AUGMENTATIONS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; choose from {sorted(AUGMENTATIONS)}") from None


def sampling_maps(centre: tuple[float, float], crop: int, rng: np.random.Generator,
                  config: AugmentConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Source coordinates (map_x, map_y), float32 (crop, crop), for every output pixel, and the zoom."""
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
    return map_x.astype(np.float32), map_y.astype(np.float32), scale


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


def hue_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the hue of a float RGB image (0..255) by `degrees`; grey pixels (glass) stay grey."""
    hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


def optics(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Greyscale, focus blur and sensor noise on a float RGB image, each with its own probability."""
    if rng.random() < config.grey_prob:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < config.blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*config.blur_sigma))
    if rng.random() < config.noise_prob:
        image = image + rng.normal(0, rng.uniform(*config.noise_sigma), image.shape).astype(np.float32)
    return image


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1] if ok else image


def half_resolution(image: np.ndarray) -> np.ndarray:
    """The image at half size (area-averaged): what zoomed-out crops are sampled from."""
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)


def augment_crop(image: np.ndarray, labels: np.ndarray, centre: tuple[float, float], crop: int,
                 rng: np.random.Generator, config: AugmentConfig,
                 half: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (crop x crop) image/label pair around `centre` (y, x) of the source.

    `half` is `half_resolution(image)` (callers cache it); without it zoomed-out
    crops sample the full image.
    """
    map_x, map_y, scale = sampling_maps(centre, crop, rng, config)
    # Keep the crop inside the image where possible by shifting (never resampling) it.
    height, width = labels.shape
    map_x += _inside_shift(map_x, width)
    map_y += _inside_shift(map_y, height)
    if half is not None and scale < HALF_RESOLUTION_BELOW:
        fy, fx = half.shape[0] / height, half.shape[1] / width
        out_image = cv2.remap(half, (map_x + 0.5) * fx - 0.5, (map_y + 0.5) * fy - 0.5, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
    else:
        out_image = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out_labels = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    do_colour = rng.random() < config.colour_prob
    do_stain = rng.random() < config.stain_prob
    do_hue = rng.random() < config.hue_prob
    do_optics = config.grey_prob > 0 or config.blur_prob > 0 or config.noise_prob > 0
    if do_colour or do_stain or do_hue or do_optics:
        work = out_image.astype(np.float32)
        if do_stain:
            work = stain_jitter(work, rng, config)
        if do_hue:
            work = hue_rotate(work, rng.uniform(-config.hue_degrees, config.hue_degrees))
        if do_colour:
            work = colour_jitter(work, rng, config)
        if do_optics:
            work = optics(work, rng, config)
        out_image = np.clip(work + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_prob:
        out_image = jpeg_round_trip(np.ascontiguousarray(out_image), int(rng.integers(*config.jpeg_quality)))
    return np.ascontiguousarray(out_image), out_labels


def _inside_shift(coords: np.ndarray, length: int) -> float:
    low, high = float(coords.min()), float(coords.max())
    if high - low > length - 1:
        return (length - 1) / 2.0 - (low + high) / 2.0  # larger than the image: centre it, reflect the rest
    if low < 0:
        return -low
    if high > length - 1:
        return (length - 1) - high
    return 0.0
