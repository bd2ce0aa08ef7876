"""Background skipping: fewer model calls, identical labels wherever there is tissue."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rt_models
from conftest import ort_predict, tissue_image
from bonemarrow.runtime.tissue import tissue_mask, tissue_pixels, upsample_mask
from bonemarrow.runtime.tiling import sliding_window_inference

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
