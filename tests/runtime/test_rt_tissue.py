"""Background skipping: fewer model calls, identical labels wherever there is tissue."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rt_models
from conftest import ort_predict, tissue_image
from bonemarrow.runtime.tiling import (ArraySink, ArraySource, LowResView, TilingConfig, run_tiled,
                                       sliding_window_inference)
from bonemarrow.runtime.tissue import DEFAULT_MARGIN, detect_tissue, tissue_mask, tissue_pixels, upsample_mask

RECEPTIVE = ort_predict(rt_models.receptive())
PIXELWISE = ort_predict(rt_models.pixelwise())


def counting(predict):
    calls = {"tiles": 0}

    def wrapped(batch):
        calls["tiles"] += len(batch)
        return predict(batch)

    return wrapped, calls


@pytest.mark.parametrize("shape,tile", [((300, 420), 48), ((97, 333), 32), ((600, 64), 64)])
def test_skipping_leaves_tissue_labels_unchanged(shape, tile):
    image = tissue_image(*shape, seed=7)
    predict, calls = counting(RECEPTIVE)
    skipped = sliding_window_inference(image, predict, tile=tile, divisor=8, skip_background=True, return_probs=True)
    full = sliding_window_inference(image, RECEPTIVE, tile=tile, divisor=8, skip_background=False,
                                    return_probs=True)
    mask, factor = tissue_mask(image)
    inside = upsample_mask(mask, factor, shape)
    assert skipped.tiles_skipped > 0 and calls["tiles"] == skipped.tiles_total - skipped.tiles_skipped
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(skipped.labels[inside], full.labels[inside])
    np.testing.assert_array_equal(skipped.probs[:, inside], full.probs[:, inside])
    # Every real tissue pixel lies inside the (dilated) mask.
    assert inside[tissue_pixels(image)].all()
    # Outside the mask: background where no tile ran.
    assert (skipped.labels[~inside] == 0).sum() > 0


def test_pixelwise_model_labels_glass_background_so_skipping_changes_nothing():
    image = tissue_image(200, 260, seed=1)
    a = sliding_window_inference(image, PIXELWISE, tile=32, divisor=8, skip_background=True)
    b = sliding_window_inference(image, PIXELWISE, tile=32, divisor=8, skip_background=False)
    assert a.tiles_skipped > 0
    np.testing.assert_array_equal(a.labels, b.labels)


def test_all_glass_image_skips_every_tile_and_is_background():
    image = np.full((100, 130, 3), 250, np.uint8)
    predict, calls = counting(PIXELWISE)
    result = sliding_window_inference(image, predict, tile=32, divisor=8, return_probs=True)
    assert result.tiles_skipped == result.tiles_total and calls["tiles"] == 0
    assert (result.labels == 0).all() and (result.probs[0] == 1).all()


@settings(max_examples=40, deadline=None)
@given(y=st.integers(0, 199), x=st.integers(0, 299), colour=st.sampled_from([(200, 200, 200), (250, 200, 250)]))
def test_a_single_tissue_pixel_is_never_missed(y, x, colour):
    image = np.full((200, 300, 3), 250, np.uint8)
    image[y, x] = colour
    mask, factor = tissue_mask(image, factor=8, margin=16)
    full = upsample_mask(mask, factor, image.shape[:2])
    assert full[y, x]
    assert full[max(0, y - 16):y + 17, max(0, x - 16):x + 17].all()  # the safety margin


class ViewSource:
    """An ImageSource whose low-resolution view is given separately from its pixels,
    recording every rectangle the tiler reads."""

    def __init__(self, image: np.ndarray, view: LowResView):
        self.image, self.view = image, view
        self.height, self.width = image.shape[:2]
        self.reads: list[tuple[int, int, int, int]] = []
        self.view_requests: list[int] = []

    def read(self, y0, y1, x0, x1):
        self.reads.append((y0, y1, x0, x1))
        return self.image[y0:y1, x0:x1]

    def low_res_view(self, factor):
        self.view_requests.append(factor)
        return self.view


def test_tissue_detection_uses_the_sources_low_res_view_not_its_pixels():
    """Tissue everywhere in the pixels, but the source's (factor 4) view shows it only on the left:
    the skipped tiles follow the view, and the tiler reads nothing but tiles."""
    image = tissue_image(128, 256, seed=5)
    image[:] = (150, 60, 140)  # tissue in every pixel
    view_rgb = np.full((32, 64, 3), 250, np.uint8)
    view_rgb[:, :16] = (150, 60, 140)  # the view's tissue: x < 64 at full resolution
    source = ViewSource(image, LowResView(view_rgb, 4))
    sink = ArraySink(128, 256)
    result = run_tiled(source, PIXELWISE, [sink], TilingConfig(tile=32, overlap=0.0, batch_size=4), divisor=8)
    assert source.view_requests == [8]
    assert 0 < result.tiles_skipped < result.tiles_total
    assert all(y1 - y0 <= 32 and x1 - x0 <= 32 for y0, y1, x0, x1 in source.reads)  # tiles only
    assert max(x0 for _, _, x0, _ in source.reads) < 64 + DEFAULT_MARGIN  # tiles near the view's tissue
    assert (sink.labels[:, 64 + DEFAULT_MARGIN + 32:] == 0).all()  # skipped: background
    mask, factor = detect_tissue(source)
    assert factor == 8 and mask.shape == (16, 32)  # the factor-4 view pooled by 2


def test_an_array_source_is_its_own_view_so_skipping_is_unchanged():
    image = tissue_image(200, 260, seed=1)
    view = ArraySource(image).low_res_view(8)
    assert view.factor == 1 and view.rgb is image
    mask, factor = detect_tissue(ArraySource(image))
    expected, expected_factor = tissue_mask(image)
    assert factor == expected_factor and np.array_equal(mask, expected)
