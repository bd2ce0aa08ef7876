"""Segmenter(model, config): arrays and any ImageSource into any list of BandSinks, the same labels."""
from __future__ import annotations

import numpy as np
import pytest

import rt_models
from conftest import tissue_image
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import ArraySink, ArraySource, ClassCounter, TilingConfig


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = rt_models.save(rt_models.receptive(rt_models.metadata(tile=48, divisor=8)),
                          tmp_path_factory.mktemp("seg") / "m.onnx")
    return open_model(path, "cpu", threads=1)


class RowChecksum:
    """A test sink: the bands it got, in order, and a running checksum of the labels."""

    def __init__(self):
        self.starts, self.total = [], 0

    def write(self, y0, labels, probs):
        self.starts.append(y0)
        self.total += int(labels.astype(np.int64).sum())


def test_segment_source_feeds_every_sink_and_equals_segment(model):
    image = tissue_image(130, 170, seed=4)
    segmenter = Segmenter(model, TilingConfig(overlap=0.5, batch_size=3))
    expected = segmenter.segment(image)
    maps, checksum, counter = ArraySink(130, 170), RowChecksum(), ClassCounter()
    result = segmenter.segment_source(ArraySource(image), [maps, checksum, counter])
    np.testing.assert_array_equal(maps.labels, expected.labels)
    assert checksum.total == int(expected.labels.astype(np.int64).sum()) and checksum.starts[0] == 0
    assert counter.counts.tolist() == result.counts.tolist() == expected.counts.tolist()
    assert result.fractions == expected.fractions and result.labels is None
    assert (result.height, result.width) == (130, 170) == expected.labels.shape
    assert (result.tiles_total, result.tiles_skipped) == (expected.tiles_total, expected.tiles_skipped)
    assert 0 < result.model_seconds <= result.seconds


def test_the_config_is_resolved_against_the_model_and_never_changed(model):
    config = TilingConfig(overlap=0.5)
    segmenter = Segmenter(model, config)
    assert segmenter.config.tile == model.info.tile == 48 and segmenter.config.overlap == 0.5
    assert config.tile is None
    assert Segmenter(model, TilingConfig(tile=32)).config.tile == 32
    assert Segmenter(model).config == TilingConfig(tile=48)


def test_probabilities_on_request(model):
    image = tissue_image(60, 50)
    result = Segmenter(model, TilingConfig(skip_background=False)).segment(image, return_probs=True)
    assert result.probs.shape == (4, 60, 50)
    np.testing.assert_array_equal(result.probs.argmax(axis=0), result.labels)
