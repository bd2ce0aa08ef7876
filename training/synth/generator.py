"""The generator's public entry point: one seed in, one scan and its label map out."""
from __future__ import annotations

import numpy as np

from bonemarrow.training.synth.artefacts import apply_artefacts
from bonemarrow.training.synth.geometry import build_geometry
from bonemarrow.training.synth.painting import paint
from bonemarrow.training.synth.style import Style, SynthRanges, draw_style, profile


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image `index` of a run seeded with `seed`.

    Each image draws from its own stream, so generating N + 1 images leaves the
    first N exactly as they were.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def generate_biopsy(seed_or_rng: int | np.random.Generator, width: int, height: int,
                    return_params: bool = False, ranges: SynthRanges | str = "train",
                    style: Style | None = None):
    """A synthetic biopsy scan: (rgb uint8 (H, W, 3), labels uint8 (H, W)) [, params dict].

    The core lies along the longer side of the image; labels follow
    bonemarrow.runtime.labels (0 background, 1 bone, 2 fat, 3 other tissue).
    `ranges` is a SynthRanges or a profile name ("train", "shifted"); `style`
    fixes every drawn parameter instead (tests use it to switch one feature).
    """
    if width < 16 or height < 16:
        raise ValueError(f"image size {width}x{height} is too small (16 px minimum per side)")
    rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else np.random.default_rng(seed_or_rng)
    ranges = profile(ranges) if isinstance(ranges, str) else ranges
    if style is None:
        style = draw_style(rng, ranges)
    portrait = height > width
    long_side, short_side = (height, width) if portrait else (width, height)
    geometry = build_geometry(rng, short_side, long_side, style)
    rgb = apply_artefacts(rng, paint(rng, geometry, style), geometry, style)
    labels = geometry.labels
    if portrait:
        rgb = np.ascontiguousarray(rgb.transpose(1, 0, 2))
        labels = np.ascontiguousarray(labels.T)
    if return_params:
        return rgb, labels, {**geometry.params, "style": style.as_params(), "portrait": portrait}
    return rgb, labels
