"""The stain-normalisation study's maths: Macenko's stain vectors, and re-rendering towards a reference."""
from __future__ import annotations

import numpy as np

from bonemarrow.benchmarks.stain_norm import estimate_stains, normalise, reference_stains
from bonemarrow.training.synth import generate_biopsy
from bonemarrow.training.synth.style import Style, draw_style, stain_vectors


def _biopsy(**values):
    drawn = dict(draw_style(np.random.default_rng(1)).values)
    drawn.update({key: 0.0 for key in drawn if key.startswith("has_")})
    drawn.update(haematoxylin_hue=0.0, eosin_hue=0.0, haematoxylin_strength=1.0, eosin_strength=1.0,
                 white_balance=0.0, glass_density=0.0, bone_density=0.2, fat_bias=-1.0)
    drawn.update(values)
    style = Style(drawn)
    rgb, labels = generate_biopsy(5, 720, 300, style=style)
    return rgb, labels, style


def test_estimated_stain_vectors_point_along_the_rendering_stains():
    rgb, _, style = _biopsy()
    stains = estimate_stains(rgb)
    haematoxylin, eosin = stain_vectors(style)
    # Macenko finds the extreme directions of mixed pixels, so close to the true vectors, not on them.
    assert float(stains.matrix[0] @ haematoxylin) > 0.95
    assert float(stains.matrix[1] @ eosin) > 0.9


def test_normalising_towards_itself_changes_little_and_towards_a_reference_moves_closer():
    reference, labels, _ = _biopsy()
    shifted, _, _ = _biopsy(eosin_hue=1.3, haematoxylin_hue=-1.3, eosin_strength=1.7)
    target = reference_stains([reference])
    tissue = labels > 0
    same = normalise(reference, estimate_stains(reference), target)
    assert np.abs(same[tissue].astype(int) - reference[tissue]).mean() < 8
    moved = normalise(shifted, estimate_stains(shifted), target)
    before = np.abs(shifted[tissue].astype(int) - reference[tissue]).mean()
    after = np.abs(moved[tissue].astype(int) - reference[tissue]).mean()
    assert after < 0.6 * before


def test_glass_and_too_little_tissue_are_left_alone():
    glass = np.full((64, 64, 3), 245, np.uint8)
    assert estimate_stains(glass) is None
    assert np.array_equal(normalise(glass, None, reference_stains([_biopsy()[0]])), glass)
