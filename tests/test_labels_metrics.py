from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from bonemarrow.runtime import labels, metrics
from bonemarrow.runtime.io import labels as label_io

label_maps = arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 3))


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_label_png_round_trip(tmp_path_factory, lab):
    path = tmp_path_factory.mktemp("labels") / "x.png"
    label_io.write_label_png(path, lab)
    np.testing.assert_array_equal(label_io.read_label_png(path), lab)


def test_label_png_is_palette_with_class_colours(tmp_path):
    import cv2

    lab = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    label_io.write_label_png(tmp_path / "x.png", lab)
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "x.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(rgb, labels.colorize(lab))


def test_encode_rejects_out_of_range():
    import pytest

    with pytest.raises(ValueError):
        label_io.encode_label_png(np.full((2, 2), 4, dtype=np.uint8))


def test_density_and_fractions():
    lab = np.array([[0, 0, 1, 2], [3, 3, 1, 0]])
    fractions = metrics.tissue_fractions(metrics.class_counts(lab))
    assert fractions["bone_density"] == 2 / 5
    assert fractions["fat_fraction"] == 1 / 5
    assert fractions["other_fraction"] == 2 / 5
    assert math.isnan(metrics.bone_density(np.zeros((3, 3), dtype=np.uint8)))


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_dice_of_identical_maps_is_one_where_present(lab):
    dice = metrics.dice_per_class(lab, lab)
    for index, name in enumerate(labels.CLASSES):
        if (lab == index).any():
            assert dice[name] == 1.0
        else:
            assert math.isnan(dice[name])


def test_confusion_and_relative_error():
    truth = np.array([1, 1, 2, 3, 0])
    pred = np.array([1, 2, 2, 3, 0])
    result = metrics.evaluate_pair(pred, truth)
    assert result["confusion"][1][2] == 1 and result["confusion"][1][1] == 1
    assert result["true_density"] == 2 / 4 and result["predicted_density"] == 1 / 4
    assert result["relative_density_error"] == 0.5
    assert math.isclose(result["dice"]["bone"], 2 / 3)


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import importlib
    import os
    import stat

    import bonemarrow.runtime.atomic as atomic

    umask = os.umask(0o022)
    try:
        importlib.reload(atomic)  # the module reads the umask once, at import
        atomic.write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
        importlib.reload(atomic)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert (tmp_path / "a.txt").read_text() == "x"
    assert list(tmp_path.iterdir()) == [tmp_path / "a.txt"]  # no temporary file left behind


def test_json_safe_writes_strict_json_with_null_for_non_finite(tmp_path):
    import json

    from bonemarrow.runtime.json_io import json_safe, write_json_atomic

    value = {"a": math.nan, "b": [1.5, math.inf, (-math.inf, 2)], "c": {"d": math.nan, "e": "x"}}
    assert json_safe(value) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None, "e": "x"}}
    write_json_atomic(tmp_path / "r.json", value)
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["b"] == [1.5, None, [None, 2]]
