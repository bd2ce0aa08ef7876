"""The synthetic biopsy generator: determinism, exact labels, and the variety that breaks shortcuts."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bonemarrow.runtime.labels import BACKGROUND, BONE, FAT, OTHER
from bonemarrow.runtime.metrics import bone_density
from bonemarrow.training.synth import generate_biopsy, image_rng
from bonemarrow.training.synth.geometry import build_geometry
from bonemarrow.training.synth.style import PROFILES, SHIFTED, TRAIN, Style, draw_style, span

ARTEFACTS = ("fold", "jpeg", "stitching", "dust", "pen", "bubble", "low_resolution")


def quiet_style(seed: int, **values) -> Style:
    """A drawn training style with every artefact off, then `values` forced."""
    drawn = dict(draw_style(image_rng(seed, 0), TRAIN).values)
    drawn.update({f"has_{name}": 0.0 for name in ARTEFACTS})
    drawn.update(values)
    return Style(drawn)


def test_same_seed_same_biopsy_and_different_seeds_differ():
    rgb_a, labels_a = generate_biopsy(7, 384, 192)
    rgb_b, labels_b = generate_biopsy(7, 384, 192)
    rgb_c, labels_c = generate_biopsy(8, 384, 192)
    assert np.array_equal(rgb_a, rgb_b) and np.array_equal(labels_a, labels_b)
    assert not np.array_equal(labels_a, labels_c)


def test_image_streams_depend_only_on_seed_and_index():
    first = image_rng(3, 1).random(4)
    assert np.array_equal(first, image_rng(3, 1).random(4))
    assert not np.array_equal(first, image_rng(3, 2).random(4))
    assert not np.array_equal(first, image_rng(4, 1).random(4))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), width=st.integers(16, 260), height=st.integers(16, 260),
       profile=st.sampled_from(sorted(PROFILES)))
def test_any_size_and_profile_gives_matching_valid_outputs(seed, width, height, profile):
    rgb, labels = generate_biopsy(seed, width, height, ranges=profile)
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    assert labels.shape == (height, width) and labels.dtype == np.uint8
    assert labels.max() <= OTHER


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(sorted(PROFILES)))
def test_every_drawn_parameter_lies_in_its_profile_range(seed, profile):
    ranges = PROFILES[profile]
    style = draw_style(np.random.default_rng(seed), ranges)
    for item in dataclasses.fields(ranges):
        if item.name.startswith("p_"):
            assert style.values[f"has_{item.name[2:]}"] in (0.0, 1.0)
        elif item.name == "bone_density" and style.flag("no_bone"):
            assert style.bone_density == 0.0
        else:
            assert getattr(ranges, item.name).contains(style.values[item.name]), item.name


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_shifted_profile_draws_stain_scale_and_fat_outside_training(seed):
    style = draw_style(np.random.default_rng(seed), SHIFTED)
    for name in ("scale", "haematoxylin_strength", "eosin_strength", "haematoxylin_hue", "eosin_hue",
                 "adipocyte_diameter", "glass_density"):
        value = style.values[name]
        train = getattr(TRAIN, name)
        assert value <= train.low + 1e-9 or value >= train.high - 1e-9, name


def test_spans_draw_only_inside_their_intervals():
    two = span(0, 1, 5, 6)
    rng = np.random.default_rng(0)
    draws = [two.draw(rng) for _ in range(500)]
    assert all(two.contains(d) for d in draws) and min(draws) < 1 and max(draws) > 5
    assert not two.contains(3.0)
    with pytest.raises(ValueError):
        span(2, 1)


@pytest.fixture(scope="module")
def geometries():
    out = []
    for index in range(8):
        rng = image_rng(11, index)
        style = draw_style(rng, TRAIN)
        out.append(build_geometry(rng, 300, 720, style))
    return out


def test_labels_are_the_geometry_and_the_masks_partition_the_tissue(geometries):
    for geometry in geometries:
        labels = geometry.labels
        assert np.array_equal(labels == BACKGROUND, ~geometry.tissue)
        assert np.array_equal(labels == BONE, geometry.bone)
        assert np.array_equal(labels == FAT, geometry.vacuole | geometry.membrane)
        assert np.array_equal(labels == OTHER, geometry.marrow | geometry.wall | geometry.blood | geometry.fibrosis)
        parts = [geometry.marrow, geometry.wall, geometry.blood, geometry.fibrosis, geometry.vacuole,
                 geometry.membrane, geometry.bone]
        coverage = sum(part.astype(np.int32) for part in parts)
        assert coverage.max() <= 1 and np.array_equal(coverage == 1, geometry.tissue)


def test_white_fat_never_touches_the_slide_or_a_tear(geometries):
    """Fat is white like the glass; it is only ever seen enclosed by tissue (membranes, bone, marrow)."""
    for geometry in geometries:
        glass = (~geometry.tissue).astype(np.uint8)
        near_glass = cv2.dilate(glass, np.ones((3, 3), np.uint8)) > 0
        assert not (geometry.vacuole & near_glass).any()
    assert any(geometry.vacuole.any() for geometry in geometries)


def test_the_core_lies_on_the_slide_with_slide_all_around():
    for index in range(4):
        _, labels = generate_biopsy(image_rng(5, index), 640, 320)
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        assert (border == BACKGROUND).mean() > 0.9
        assert (labels == OTHER).any()


def _quiet(seed: int, width: int, height: int, **values):
    style = quiet_style(seed, **values)
    rng = image_rng(seed, 1)
    geometry = build_geometry(rng, height, width, style)
    rgb, labels = generate_biopsy(image_rng(seed, 1), width, height, style=style)
    return rgb, labels, geometry


def test_painting_follows_the_labels():
    rgb, labels, geometry = _quiet(2, 900, 400, bone_density=0.3, has_no_bone=0.0, haematoxylin_strength=1.0,
                                   eosin_strength=1.0, glass_density=0.0, lamp=245.0, white_balance=0.0)
    rgb = rgb.astype(float)
    brightness = rgb.mean(axis=2)
    slide = brightness[labels == BACKGROUND].mean()
    assert slide > 215  # near-white glass
    assert brightness[geometry.vacuole].mean() > 200  # fat vacuoles are glass too
    marrow = rgb[geometry.marrow].mean(axis=0)
    assert marrow.mean() < slide - 30 and marrow[2] > marrow[1]  # stained: blue above green
    bone = rgb[labels == BONE].mean(axis=0)
    assert bone[0] > bone[1] + 30  # eosin: red well above green
    if geometry.blood.any():
        blood = rgb[geometry.blood].mean(axis=0)
        assert blood[0] > blood[1] + 40


@pytest.mark.parametrize("feature", ARTEFACTS)
def test_every_artefact_changes_pixels_but_never_labels(feature):
    rgb_off, labels_off, _ = _quiet(4, 720, 300)
    rgb_on, labels_on, geometry = _quiet(4, 720, 300, **{f"has_{feature}": 1.0})
    assert np.array_equal(labels_on, labels_off)
    assert not np.array_equal(rgb_on, rgb_off)
    if feature == "pen":  # ink lands on the glass only, away from the tissue
        changed = (rgb_on != rgb_off).any(axis=2)
        near_tissue = cv2.dilate(geometry.tissue.view(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert not (changed & near_tissue).any()


def test_blood_in_lumens_and_haemorrhage_is_other_tissue_painted_red():
    for seed in range(6):
        rgb, labels, geometry = _quiet(seed, 900, 400, haemorrhage=0.25, lumens=3.0, has_lumen_blood=1.0,
                                       eosin_strength=1.0)
        if not geometry.blood.any():
            continue
        assert (labels[geometry.blood] == OTHER).all()
        red = rgb[geometry.blood].astype(float).mean(axis=0)
        assert red[0] > red[1] + 40
        return
    pytest.fail("no image drew blood")


def test_bone_and_marrow_hues_overlap_across_the_training_profile():
    """Pink does not mean bone: somewhere, marrow is redder than bone is elsewhere."""
    marrow_red, bone_red = [], []
    for index in range(16):
        rgb, labels = generate_biopsy(image_rng(21, index), 600, 240)
        rgb = rgb.astype(float)
        redness = rgb[..., 0] - rgb[..., 2]
        if (labels == OTHER).sum() > 500:
            marrow_red.append(redness[labels == OTHER].mean())
        if (labels == BONE).sum() > 500:
            bone_red.append(redness[labels == BONE].mean())
    assert max(marrow_red) > min(bone_red)


def _areas(mask: np.ndarray) -> np.ndarray:
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
    return stats[1:, cv2.CC_STAT_AREA]


def test_white_spaces_of_fat_and_background_overlap_in_size():
    """Size alone never separates an adipocyte (fat) from a lumen (background inside tissue)."""
    fat_areas, lumen_areas = [], []
    for index in range(10):
        rng = image_rng(31, index)
        style = draw_style(rng, TRAIN)
        geometry = build_geometry(rng, 500, 1200, style)
        fat_areas.extend(_areas(geometry.vacuole))
        filled = cv2.morphologyEx(geometry.tissue.view(np.uint8), cv2.MORPH_CLOSE, np.ones((41, 41), np.uint8))
        holes = (filled > 0) & ~geometry.tissue
        lumen_areas.extend(_areas(holes))
    assert fat_areas and lumen_areas
    assert max(fat_areas) > np.median(lumen_areas) and min(lumen_areas) < np.median(fat_areas) * 4


def test_scale_multiplies_structure_sizes():
    def median_cell(scale: float) -> float:
        style = quiet_style(5, scale=scale, fat_bias=2.0, adipocyte_diameter=30.0, collapsed=0.0)
        geometry = build_geometry(image_rng(5, 2), 500, 1200, style)
        return float(np.median(_areas(geometry.vacuole)))

    ratio = median_cell(1.6) / median_cell(0.8)
    assert 2.5 < ratio < 6.0  # areas grow with the square of the scale (4x), give or take membranes


def test_bone_density_spans_zero_to_about_forty_five_percent():
    densities = [bone_density(generate_biopsy(image_rng(0, index), 768, 384)[1]) for index in range(12)]
    densities = [d for d in densities if not np.isnan(d)]
    assert all(0 <= density <= 0.55 for density in densities)
    assert min(densities) < 0.12 and max(densities) > 0.25


def test_portrait_images_hold_the_core_along_the_long_side():
    _, labels = generate_biopsy(4, 300, 700)
    ys, xs = np.nonzero(labels != BACKGROUND)
    assert ys.std() > 1.5 * xs.std()


def test_the_documented_ranges_are_the_code():
    from pathlib import Path

    from bonemarrow.training.synth.style import ranges_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "synthetic.md").read_text()
    assert ranges_table() in doc, "regenerate the table: python -m bonemarrow.training.synth.style"
