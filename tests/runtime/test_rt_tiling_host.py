"""The tiler's host work: padded fixed-shape batches, the in-place accumulator, argmax and counting."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rt_models
from conftest import ort_predict, tissue_image
from bonemarrow.runtime.tiling import (ArraySink, ArraySource, BandAccumulator, ClassCounter, TilingConfig,
                                       run_tiled, sliding_window_inference)
from bonemarrow.runtime.tiling.accumulate import OPENCV_IN_PLACE, argmax_classes, finish_rows

PIXELWISE = ort_predict(rt_models.pixelwise())
RECEPTIVE = ort_predict(rt_models.receptive())


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 120), width=st.integers(1, 90), tile=st.sampled_from([16, 24, 32]),
       overlap=st.sampled_from([0.0, 0.25, 0.5]), batch_size=st.integers(1, 7), skip=st.booleans())
def test_padded_last_batch_gives_identical_labels_and_probs(height, width, tile, overlap, batch_size, skip):
    image = tissue_image(height, width, seed=width)
    kwargs = dict(tile=tile, divisor=8, overlap=overlap, batch_size=batch_size, skip_background=skip,
                  return_probs=True)
    plain = sliding_window_inference(image, RECEPTIVE, **kwargs)
    fixed = sliding_window_inference(image, RECEPTIVE, fixed_batch=True, **kwargs)
    np.testing.assert_array_equal(fixed.labels, plain.labels)
    np.testing.assert_array_equal(fixed.probs, plain.probs)


def test_fixed_batch_sends_one_shape_and_drops_the_padding():
    image = tissue_image(70, 70)
    shapes = []

    def predict(batch):
        shapes.append(batch.shape)
        return PIXELWISE(batch)

    for fixed in (False, True):
        shapes.clear()
        config = TilingConfig(tile=32, overlap=0.25, batch_size=4, skip_background=False, fixed_batch=fixed)
        sink = ArraySink(70, 70)
        result = run_tiled(ArraySource(image), predict, [sink], config, divisor=8)
        assert result.tiles_total == 9  # 3 x 3 tiles: batches of 4, 4 and 1
        if fixed:
            assert shapes == [(4, 3, 32, 32)] * 3
        else:
            assert [s[0] for s in shapes] == [4, 4, 1]
        np.testing.assert_array_equal(sink.labels, PIXELWISE(image.transpose(2, 0, 1)[None].copy())[0].argmax(0))


def test_fixed_batch_pads_with_the_pad_value():
    seen = []

    def predict(batch):
        seen.append(batch.copy())
        return PIXELWISE(batch)

    config = TilingConfig(tile=16, batch_size=3, skip_background=False, fixed_batch=True, pad_value=7)
    run_tiled(ArraySource(np.zeros((16, 16, 3), np.uint8)), predict, [ArraySink(16, 16)], config, divisor=8)
    assert len(seen) == 1 and seen[0].shape == (3, 3, 16, 16)
    assert (seen[0][0] == 0).all() and (seen[0][1:] == 7).all()


def test_fixed_batch_must_be_a_bool():
    with pytest.raises(ValueError, match="fixed_batch"):
        TilingConfig(fixed_batch=1)


def test_predict_may_reuse_its_output_buffer():
    """The tiler reads each output before calling again (LoadedModel.predict_view relies on it)."""
    image = tissue_image(90, 100, seed=2)
    buffer = {}

    def reusing(batch):
        out = buffer.setdefault(batch.shape, np.empty((batch.shape[0], 4, *batch.shape[2:]), np.float32))
        out[...] = RECEPTIVE(batch)
        return out

    kwargs = dict(tile=32, divisor=8, overlap=0.5, batch_size=2, skip_background=False, return_probs=True)
    expected = sliding_window_inference(image, RECEPTIVE, **kwargs)
    got = sliding_window_inference(image, reusing, **kwargs)
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_array_equal(got.probs, expected.probs)


@pytest.mark.skipif(not OPENCV_IN_PLACE, reason="this OpenCV copies strided destinations; numpy path in use")
def test_opencv_and_numpy_accumulation_agree():
    rng = np.random.default_rng(0)
    importance = rng.random((24, 24), dtype=np.float32) + 0.01
    accs = [BandAccumulator(60, 4, use_opencv=flag) for flag in (True, False)]
    for y, x in [(0, 0), (0, 30), (10, 20), (20, 36), (30, 5)]:
        probs = rng.random((4, 24, 24), dtype=np.float32)
        for acc in accs:
            acc.add(y, x, probs, importance)
    (a, wa), (b, wb) = (acc.pop(40) for acc in accs)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(wa, wb, rtol=1e-6)


def test_pop_returns_views_and_shifts_them_out_at_the_next_call():
    acc = BandAccumulator(8, 2)
    ones = np.ones((2, 4, 8), np.float32)
    weight = np.ones((4, 8), np.float32)
    acc.add(0, 0, ones, weight)
    acc.add(2, 0, 2 * ones, weight)  # rows 0..5 held
    sums, weights = acc.pop(3)
    assert sums.shape == (2, 3, 8) and (sums[:, :2] == 1).all() and (sums[:, 2] == 3).all()
    assert (weights[2] == 2).all()
    acc.add(4, 0, ones, weight)  # shifts rows 3..5 to the top first
    sums, weights = acc.pop(8)
    assert acc.lo == 8 and sums.shape == (2, 5, 8)
    np.testing.assert_array_equal(sums[0, :, 0], [3, 3, 3, 1, 1])
    np.testing.assert_array_equal(weights[:, 0], [2, 2, 2, 1, 1])


def test_pop_hands_back_exact_sums_across_shifts():
    """Rows keep their sums through several pops and shifts (checked against a dense reference)."""
    rng = np.random.default_rng(1)
    acc = BandAccumulator(20, 3)
    dense = np.zeros((3, 200, 20), np.float32)
    dense_w = np.zeros((200, 20), np.float32)
    finished = []
    for y in range(0, 180, 7):
        probs = rng.random((3, 16, 12), dtype=np.float32)
        importance = rng.random((16, 12), dtype=np.float32)
        x = int(rng.integers(0, 9))
        acc.add(y, x, probs, importance)
        dense[:, y:y + 16, x:x + 12] += probs * importance
        dense_w[y:y + 16, x:x + 12] += importance
        sums, weights = acc.pop(y)  # rows above the next tile are final
        finished.append((sums.copy(), weights.copy()))
    sums, weights = acc.pop(200)
    finished.append((sums.copy(), weights.copy()))
    got = np.concatenate([s for s, _ in finished], axis=1)
    got_w = np.concatenate([w for _, w in finished], axis=0)
    np.testing.assert_allclose(got, dense[:, :got.shape[1]], rtol=1e-6)
    np.testing.assert_allclose(got_w, dense_w[:got_w.shape[0]], rtol=1e-6)
    assert acc.peak_rows <= 16 + 7


def test_accumulator_without_weights_keeps_none():
    acc = BandAccumulator(8, 2, weights=False)
    acc.add(0, 0, np.ones((2, 4, 8), np.float32), np.ones((4, 8), np.float32))
    sums, weights = acc.pop(4)
    assert weights is None and (sums == 1).all()
    labels, probs = finish_rows(sums, weights, False)
    assert probs is None and labels.shape == (4, 8)
    with pytest.raises(ValueError, match="weight"):
        finish_rows(sums, weights, True)


@settings(max_examples=40, deadline=None)
@given(classes=st.integers(1, 6), rows=st.integers(0, 9), cols=st.integers(1, 9), seed=st.integers(0, 999),
       levels=st.sampled_from([2, 3, 1000]))
def test_argmax_classes_equals_numpy_argmax_with_ties(classes, rows, cols, seed, levels):
    values = np.random.default_rng(seed).integers(0, levels, (classes, rows, cols)).astype(np.float32)
    np.testing.assert_array_equal(argmax_classes(values), np.argmax(values, axis=0).astype(np.uint8))


def test_finish_rows_labels_from_sums_equal_labels_from_normalised_probs():
    rng = np.random.default_rng(3)
    acc = rng.random((4, 5, 7), dtype=np.float32)
    weight = rng.random((5, 7), dtype=np.float32) + 0.5
    acc[:, 1, 2] = 0.0
    weight[1, 2] = 0.0  # uncovered: background
    labels, probs = finish_rows(acc, weight, True, rows=8, width=6)
    assert labels.shape == (8, 6) and probs.shape == (4, 8, 6)
    covered = weight[:, :6] > 0
    expected = np.where(covered, (acc[:, :, :6] / np.where(covered, weight[:, :6], 1)).argmax(0), 0)
    np.testing.assert_array_equal(labels[:5], expected)
    assert (labels[5:] == 0).all() and (probs[:, 5:] == np.array([1, 0, 0, 0])[:, None, None]).all()
    np.testing.assert_array_equal(probs[:, 1, 2], [1, 0, 0, 0])


def test_class_counter_counts_like_bincount():
    labels = np.random.default_rng(4).integers(0, 4, (37, 53)).astype(np.uint8)
    counter = ClassCounter()
    counter.write(0, labels[:20], None)
    counter.write(20, labels[20:], None)
    np.testing.assert_array_equal(counter.counts, np.bincount(labels.ravel(), minlength=4))
