"""The tiler: partition of unity, constant output, seams, banding, padding, geometry."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rt_models
from conftest import ort_predict, tissue_image
from bonemarrow.runtime.tiling import (
    ArraySink, ArraySource, TilingConfig, importance_map, plan_grid, run_tiled, sliding_window_inference, tile_starts,
)

PIXELWISE = ort_predict(rt_models.pixelwise())
CONSTANT = ort_predict(rt_models.constant())
RECEPTIVE = ort_predict(rt_models.receptive())


def full_pass(predict, image):
    return predict(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))[0]


@st.composite
def tiling_case(draw):
    divisor = draw(st.sampled_from([1, 4, 8]))
    tile = divisor * draw(st.integers(1, 48 // divisor))
    height = draw(st.integers(1, 70))
    width = draw(st.integers(1, 70))
    seed = draw(st.integers(0, 2**16))
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return dict(image=image, tile=tile, divisor=divisor, overlap=draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75])),
                batch_size=draw(st.integers(1, 5)), blend=draw(st.sampled_from(["gaussian", "constant"])),
                pad_mode=draw(st.sampled_from(["constant", "reflect"])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tiling_case())
def test_partition_of_unity_pixelwise_model_equals_one_full_pass(case):
    """Blending weights sum to one at every pixel, so a pixel-wise model is reproduced exactly."""
    image = case.pop("image")
    result = sliding_window_inference(image, PIXELWISE, skip_background=False, return_probs=True, **case)
    expected = full_pass(PIXELWISE, image)
    # Logits are exact (integers / 16): equal classes tie bit-for-bit in every tile, so labels match exactly.
    np.testing.assert_array_equal(result.labels, expected.argmax(axis=0))
    np.testing.assert_allclose(result.probs, expected, rtol=1e-5, atol=1e-7)
    assert result.labels.shape == image.shape[:2] and result.probs.shape == (4, *image.shape[:2])


def test_pixelwise_model_matches_numpy_reference():
    image = np.random.default_rng(1).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    batch = image.transpose(2, 0, 1)[None]
    np.testing.assert_allclose(PIXELWISE(batch), rt_models.pixelwise_numpy(batch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 7), (64, 64), (100, 37), (131, 97)])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_constant_model_is_constant_to_the_corners(shape, blend):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    result = sliding_window_inference(image, CONSTANT, tile=32, divisor=8, overlap=0.5, blend=blend,
                                      skip_background=False, return_probs=True)
    expected = np.broadcast_to(rt_models.CONSTANT_PROBS[:, None, None], result.probs.shape)
    np.testing.assert_allclose(result.probs, expected, rtol=1e-5)
    for corner in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        np.testing.assert_allclose(result.probs[(slice(None), *corner)], rt_models.CONSTANT_PROBS, rtol=1e-5)
    assert (result.labels == int(rt_models.CONSTANT_PROBS.argmax())).all()


def _seam_zone(grid, shape, radius):
    """Pixels within `radius` of an edge of some tile that is not also an image edge."""
    zone = np.zeros(shape, dtype=bool)
    h, w = shape
    for y in grid.ys:
        for edge in (y, y + grid.tile_h):
            if 0 < edge < h:
                zone[max(0, edge - radius):edge + radius] = True
    for x in grid.xs:
        for edge in (x, x + grid.tile_w):
            if 0 < edge < w:
                zone[:, max(0, edge - radius):edge + radius] = True
    return zone


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_seams_receptive_field_model_differs_only_near_tile_edges(overlap):
    """A model with receptive-field radius r sees zero padding at a tile edge instead of the
    neighbouring pixels, so tiles disagree with a full pass only within r of an inner tile edge.
    Assert: outside that zone the tiled result equals the full pass, and the zone is not vacuous."""
    image = tissue_image(150, 170, seed=3)
    result = sliding_window_inference(image, RECEPTIVE, tile=48, divisor=8, overlap=overlap,
                                      skip_background=False, return_probs=True)
    expected = full_pass(RECEPTIVE, image)
    grid = plan_grid(150, 170, tile=48, overlap=overlap, divisor=8)
    zone = _seam_zone(grid, image.shape[:2], rt_models.RECEPTIVE_RADIUS)
    diff = np.abs(result.probs - expected).max(axis=0)
    assert diff[~zone].max() < 1e-5
    assert (result.labels[~zone] == expected.argmax(axis=0)[~zone]).all()
    assert diff[zone].max() > 1e-4  # the zone is not vacuous: seams do differ there


def test_gaussian_blending_with_overlap_hides_seams():
    """Overlap + Gaussian weights down-weight tile borders, so the seam error of a receptive-field
    model shrinks well below both hard seams (no overlap) and flat averaging."""
    image = tissue_image(150, 170, seed=3)
    expected = full_pass(RECEPTIVE, image)

    def error(overlap, blend):
        result = sliding_window_inference(image, RECEPTIVE, tile=48, divisor=8, overlap=overlap, blend=blend,
                                          skip_background=False, return_probs=True)
        return float(np.abs(result.probs - expected).max(axis=0).mean())

    gaussian = error(0.5, "gaussian")
    assert gaussian * 3 < error(0.0, "gaussian")
    assert gaussian * 3 < error(0.5, "constant")


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 200), width=st.integers(1, 60), tile=st.sampled_from([16, 24, 32]),
       overlap=st.sampled_from([0.0, 0.25, 0.5]), batch_size=st.integers(1, 7), skip=st.booleans())
def test_banded_equals_unbanded(height, width, tile, overlap, batch_size, skip):
    image = tissue_image(height, width, seed=height)
    kwargs = dict(tile=tile, divisor=8, overlap=overlap, batch_size=batch_size, skip_background=skip,
                  return_probs=True)
    banded = sliding_window_inference(image, RECEPTIVE, banded=True, **kwargs)
    whole = sliding_window_inference(image, RECEPTIVE, banded=False, **kwargs)
    np.testing.assert_array_equal(banded.labels, whole.labels)
    np.testing.assert_array_equal(banded.probs, whole.probs)
    assert banded.tiles_skipped == whole.tiles_skipped


def test_banding_bounds_the_accumulator_rows():
    """Peak rows held ~ tile + stride x rows a batch spans, independent of image height."""
    image = tissue_image(600, 40)
    result = sliding_window_inference(image, PIXELWISE, tile=32, divisor=8, overlap=0.25, batch_size=2,
                                      skip_background=False)
    stride = 24
    assert result.grid[1] == 2  # one batch = one tile row
    assert result.peak_band_rows <= 32 + stride
    unbanded = sliding_window_inference(image, PIXELWISE, tile=32, divisor=8, overlap=0.25, batch_size=2,
                                        skip_background=False, banded=False)
    assert unbanded.peak_band_rows == 600


def test_small_image_is_padded_white_by_default_and_reflect_on_request():
    """Padding is visible to a receptive-field model at the padded edge: white vs reflection differ."""
    image = tissue_image(20, 20)
    white = sliding_window_inference(image, RECEPTIVE, tile=64, divisor=16, skip_background=False, return_probs=True)
    reflect = sliding_window_inference(image, RECEPTIVE, tile=64, divisor=16, skip_background=False,
                                       return_probs=True, pad_mode="reflect")
    assert white.labels.shape == (20, 20) and white.tiles_total == 1
    assert white.tile_shape == (32, 32)  # a short image gets one tile of its size rounded up to the divisor
    padded = np.pad(image, ((0, 12), (0, 12), (0, 0)), constant_values=255)
    np.testing.assert_allclose(white.probs, full_pass(RECEPTIVE, padded)[:, :20, :20], rtol=1e-5, atol=1e-6)
    reflected = np.pad(image, ((0, 12), (0, 12), (0, 0)), mode="reflect")
    np.testing.assert_allclose(reflect.probs, full_pass(RECEPTIVE, reflected)[:, :20, :20], rtol=1e-5, atol=1e-6)
    assert not np.allclose(white.probs[:, -1], reflect.probs[:, -1])


def test_tiny_image_reflect_padding_handles_one_pixel_axes():
    for shape in [(1, 1), (1, 9), (3, 2)]:
        image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
        result = sliding_window_inference(image, PIXELWISE, tile=16, divisor=8, pad_mode="reflect",
                                          skip_background=False)
        np.testing.assert_array_equal(result.labels, full_pass(PIXELWISE, image).argmax(axis=0))


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 500), tile=st.integers(1, 100), stride=st.integers(1, 100))
def test_tile_starts_cover_and_stay_inside(length, tile, stride):
    stride = min(stride, tile)
    starts = tile_starts(length, tile, stride)
    covered = np.zeros(max(length, tile), dtype=bool)
    for s in starts:
        assert 0 <= s and (s + tile <= length or (s == 0 and length < tile))
        covered[s:s + tile] = True
    assert covered[:length].all()
    assert starts == sorted(set(starts))


def test_importance_map_has_a_positive_floor_and_peaks_in_the_centre():
    weights = importance_map((64, 48))
    assert weights.min() > 0 and weights.max() == pytest.approx(1.0)
    assert weights[32, 24] > weights[0, 0]
    assert (importance_map((8, 8), "constant") == 1).all()
    with pytest.raises(ValueError):
        importance_map((8, 8), "median")


def test_bad_arguments_are_refused():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(image, PIXELWISE, tile=8, overlap=1.0)
    with pytest.raises(ValueError, match="uint8"):
        sliding_window_inference(image.astype(np.float32), PIXELWISE, tile=8)
    with pytest.raises(ValueError, match="pad_mode"):
        sliding_window_inference(image, PIXELWISE, tile=8, pad_mode="wrap")
    with pytest.raises(ValueError, match="shape"):
        sliding_window_inference(image, lambda b: np.zeros((1, 4, 3, 3), np.float32), tile=8, divisor=8,
                                 skip_background=False)


def test_progress_reports_every_tile():
    calls = []
    image = tissue_image(70, 90)
    result = sliding_window_inference(image, PIXELWISE, tile=32, divisor=8, batch_size=3,
                                      progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (result.tiles_total, result.tiles_total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


class BandRecorder:
    """A BandSink that keeps only the size of each band it receives."""

    def __init__(self):
        self.bands: list[tuple[int, int]] = []

    def write(self, y0, labels, probs):
        self.bands.append((y0, labels.shape[0]))


def _glass_run(image, tile=32, overlap=0.25):
    """Run with background skipping; return (result, labels, bands) and check the bands tile the image."""
    config = TilingConfig(tile=tile, overlap=overlap, batch_size=2)
    maps, recorder = ArraySink(*image.shape[:2]), BandRecorder()
    result = run_tiled(ArraySource(image), PIXELWISE, [maps, recorder], config, divisor=8)
    starts = [y0 for y0, _ in recorder.bands]
    assert starts == sorted(starts) and sum(rows for _, rows in recorder.bands) == image.shape[0]
    return result, maps.labels, recorder.bands


@pytest.mark.parametrize("height", [2000, 6000])
def test_skipped_glass_streams_out_in_bounded_bands(height):
    """Issue 13 item 5: an all-glass image must not hand its rows to the accumulator in one piece.
    Peak rows held and the tallest band stay <= tile + stride, whatever the height."""
    image = np.full((height, 64, 3), 250, np.uint8)
    result, labels, bands = _glass_run(image)
    tile, stride = 32, 24
    assert result.tiles_skipped == result.tiles_total
    assert result.peak_band_rows <= tile + stride
    assert max(rows for _, rows in bands) <= tile + stride
    assert (labels == 0).all()


def test_tissue_only_at_the_bottom_of_a_tall_image_keeps_the_accumulator_small():
    """The glass above the first tile that runs streams out first; the accumulator never spans it."""
    image = np.full((3000, 64, 3), 250, np.uint8)
    image[-40:] = tissue_image(40, 64, seed=2)[:, :, :]
    image[-40:, :, 0] = 120  # make sure every pixel of the strip is tissue
    result, labels, bands = _glass_run(image)
    tile, stride = 32, 24
    assert 0 < result.tiles_skipped < result.tiles_total
    assert result.peak_band_rows <= tile + stride
    assert max(rows for _, rows in bands) <= tile + stride
    whole = sliding_window_inference(image, PIXELWISE, tile=tile, divisor=8, overlap=0.25, batch_size=2,
                                     banded=False)
    np.testing.assert_array_equal(labels, whole.labels)
    assert (labels[-40:] != 0).any() and (labels[:2900] == 0).all()
