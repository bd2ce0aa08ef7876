"""The original project's inference rules, reimplemented as the baseline: crops, padding, edge weights."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bonemarrow.benchmarks.baseline import (
    CROP, EDGE_WEIGHT, PAD_VALUE, STRIDE, baseline_inference, crop_starts, crop_weights, pad_to_multiple,
)


def test_original_constants():
    assert (CROP, STRIDE, EDGE_WEIGHT, PAD_VALUE) == (480, 120, 0.75, 255)


def test_crop_starts_every_120_until_the_first_crop_reaching_the_end():
    assert crop_starts(600) == [0, 120]
    assert crop_starts(601) == [0, 120, 240]
    assert crop_starts(480) == [0]
    assert crop_starts(100) == [0]


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 5000), crop=st.integers(1, 600), stride=st.integers(1, 300))
def test_crop_starts_cover_the_axis_without_extra_crops(length, crop, stride):
    starts = crop_starts(length, crop, stride)
    assert starts[0] == 0
    assert all(b - a == stride for a, b in zip(starts, starts[1:]))
    assert starts[-1] + crop >= length  # the end is covered
    assert all(s + crop < length for s in starts[:-1])  # only the last crop reaches the end
    if stride <= crop:  # no gaps between crops
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + crop] = True
        assert covered.all()


def test_crop_starts_rejects_nonsense():
    with pytest.raises(ValueError):
        crop_starts(0)
    with pytest.raises(ValueError):
        crop_starts(10, 480, 0)


@pytest.mark.parametrize("h,w,expected", [(480, 480, (512, 512)), (256, 257, (256, 512)), (1, 600, (256, 768))])
def test_pad_to_multiple_of_256_with_white(h, w, expected):
    crop = np.random.default_rng(0).integers(0, 200, (h, w, 3), dtype=np.uint8)
    padded = pad_to_multiple(crop)
    assert padded.shape == (*expected, 3) and padded.dtype == np.uint8
    assert np.array_equal(padded[:h, :w], crop)
    assert (padded[h:] == 255).all() and (padded[:, w:] == 255).all()


def test_pad_leaves_exact_multiples_alone():
    crop = np.zeros((256, 512, 3), np.uint8)
    assert pad_to_multiple(crop) is crop


def test_outer_five_percent_weighs_three_quarters_of_the_centre():
    weights = crop_weights(480, 480)
    band = 24  # 5 % of 480
    assert weights[240, 240] == 1.0
    assert weights[band, band] == 1.0 and weights[480 - band - 1, 480 - band - 1] == 1.0
    for y, x in [(0, 240), (band - 1, 240), (240, 0), (240, 479), (479, 479), (240, 480 - band)]:
        assert weights[y, x] == pytest.approx(0.75 * weights[240, 240])
    assert (weights == 0.75).sum() == 480 * 480 - (480 - 2 * band) ** 2


def test_edge_crops_get_their_own_five_percent_band():
    weights = crop_weights(200, 480)  # a crop cut short by the image border
    assert weights[9, 240] == 0.75 and weights[10, 240] == 1.0  # 5 % of 200 = 10 rows
    assert weights[100, 23] == 0.75 and weights[100, 24] == 1.0


def test_baseline_feeds_white_padded_256_multiples_and_blends_with_edge_weights():
    """Two crops overlap; each votes for its own class; the un-weighted (centre) crop must win each pixel."""
    image = np.full((480, 600, 3), 120, np.uint8)
    calls = []

    def predict(batch):
        assert batch.dtype == np.uint8 and batch.shape[:2] == (1, 3)
        assert batch.shape[2] % 256 == 0 and batch.shape[3] % 256 == 0
        assert (batch[0, :, 480:, :] == 255).all() and (batch[0, :, :, 480:] == 255).all()
        assert (batch[0, :, :480, :480] == 120).all()
        probs = np.zeros((1, 4, *batch.shape[2:]), np.float32)
        probs[0, 1 + len(calls)] = 1.0  # first crop says bone, second fat
        calls.append(batch.shape)
        return probs

    labels, crops = baseline_inference(image, predict)
    assert crops == 2 and calls == [(1, 3, 512, 512)] * 2
    # crop A covers x 0..479 (centre 24..455), crop B covers x 120..599 (centre 144..575)
    assert (labels[:, :120] == 1).all()  # only A
    assert (labels[240, 130:144] == 1).all()  # A centre (1.0) beats B's edge band (0.75)
    assert (labels[240, 456:480] == 2).all()  # A's edge band (0.75) loses to B centre (1.0)
    assert (labels[:, 480:] == 2).all()  # only B
    # rows in both crops' top band: equal weights, a tie, argmax takes the lower class
    assert labels[0, 200] == 1
