"""Overlays: background shows the scan untouched, tissue is tinted towards its class colour."""
from __future__ import annotations

import numpy as np
import pytest

from bonemarrow.runtime.labels import COLORS
from bonemarrow.runtime.overlay import overlay


def test_background_untouched_and_classes_tinted():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    labels = np.zeros((30, 20), np.uint8)
    labels[10:20] = 1
    labels[20:] = 3
    out = overlay(rgb, labels, alpha=0.5, rows=7)  # bands smaller than the image
    np.testing.assert_array_equal(out[:10], rgb[:10])
    expected = np.rint(rgb[10:20] * 0.5 + np.array(COLORS[1]) * 0.5)
    np.testing.assert_array_equal(out[10:20], expected.astype(np.uint8))
    assert (out[20:, :, 2].astype(int) >= rgb[20:, :, 2]).all()
    with pytest.raises(ValueError):
        overlay(rgb, labels[:5])
