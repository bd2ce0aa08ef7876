"""TilingConfig: one frozen, validated settings object, resolved against a model without mutation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bonemarrow.runtime.tiling import ArraySink, ArraySource, TilingConfig, run_tiled


class Info:
    tile = 512


def test_defaults_are_bm_runs_and_the_config_is_frozen():
    config = TilingConfig()
    assert (config.tile, config.overlap, config.batch_size, config.blend, config.pad_mode, config.pad_value,
            config.skip_background) == (None, 0.25, 4, "gaussian", "constant", 255, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.overlap = 0.5


@pytest.mark.parametrize("field,value,match", [
    ("tile", 0, "tile must be positive, got 0"),
    ("tile", 32.0, "tile must be positive"),
    ("overlap", 1.0, r"overlap must be in \[0, 1\), got 1.0"),
    ("overlap", -0.1, "overlap must be in"),
    ("overlap", "0.5", "overlap must be in"),
    ("batch_size", 0, "batch_size must be >= 1, got 0"),
    ("blend", "median", "blend must be one of"),
    ("pad_mode", "wrap", "pad_mode must be one of"),
    ("pad_value", 256, "pad_value must be an integer in 0..255"),
    ("skip_background", "yes", "skip_background must be True or False"),
])
def test_bad_settings_are_refused_with_one_line(field, value, match):
    with pytest.raises(ValueError, match=match) as caught:
        TilingConfig(**{field: value})
    assert "\n" not in str(caught.value)


def test_resolved_fills_the_models_tile_in_a_new_object():
    config = TilingConfig(overlap=0.5)
    resolved = config.resolved(Info())
    assert resolved.tile == 512 and resolved.overlap == 0.5
    assert config.tile is None  # never mutated
    explicit = TilingConfig(tile=96)
    assert explicit.resolved(Info()) == explicit


def test_the_tiler_refuses_an_unresolved_config():
    source = ArraySource(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="resolve it against the model"):
        run_tiled(source, lambda b: b, [ArraySink(8, 8)], TilingConfig(), divisor=8)
