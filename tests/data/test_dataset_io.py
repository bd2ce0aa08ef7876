"""The dataset folder: hash-based splits, items and manifest, and bm-synth writing it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bonemarrow.training.cli_synth import main as bm_synth
from bonemarrow.training.dataset_io import (items_in_split, load_item, read_manifest, split_for, write_item,
                                            write_manifest)
from bonemarrow.training.synth import generate_biopsy


@given(st.text(min_size=1, max_size=40))
def test_split_is_a_function_of_the_name_alone(name):
    assert split_for(name, 0.2, 0.1) == split_for(name, 0.2, 0.1)
    assert split_for(name, 0.0, 0.0) == "train"
    assert split_for(name, 0.0, 1.0) == "test"


def test_split_fractions_are_respected():
    names = [f"biopsy_{index}" for index in range(3000)]
    splits = [split_for(name, 0.15, 0.15) for name in names]
    for split, expected in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert abs(splits.count(split) / len(names) - expected) < 0.03


def test_split_fractions_are_validated():
    with pytest.raises(ValueError):
        split_for("a", 0.6, 0.6)


def test_items_round_trip_through_the_folder(tmp_path):
    rgb, labels = generate_biopsy(1, 200, 100)
    item = write_item(tmp_path, "one", rgb, labels, source="test")
    write_manifest(tmp_path, [item], [{"source": "bad.psd", "reason": "corrupt"}])
    manifest = read_manifest(tmp_path)
    assert manifest["items"][0]["name"] == "one" and manifest["failures"][0]["reason"] == "corrupt"
    assert items_in_split(manifest, item["split"]) == manifest["items"]
    rgb_back, labels_back = load_item(tmp_path, manifest["items"][0])
    assert np.array_equal(rgb_back, rgb) and np.array_equal(labels_back, labels)
    assert manifest["items"][0]["counts"] == np.bincount(labels.ravel(), minlength=4).tolist()


def test_bm_synth_is_deterministic_and_more_images_keep_the_first(tmp_path):
    runner = CliRunner()
    small = runner.invoke(bm_synth, ["-o", str(tmp_path / "a"), "--count", "2", "--size", "256x128", "--seed", "9",
                                     "--quiet"])
    large = runner.invoke(bm_synth, ["-o", str(tmp_path / "b"), "--count", "3", "--size", "256x128", "--seed", "9",
                                     "--quiet"])
    assert small.exit_code == 0 and large.exit_code == 0, small.output + large.output
    first = read_manifest(tmp_path / "a")
    second = read_manifest(tmp_path / "b")
    assert len(first["items"]) == 2 and len(second["items"]) == 3
    for item in first["items"]:
        for folder in ("images", "labels"):
            a = (tmp_path / "a" / folder / f"{item['name']}.png").read_bytes()
            b = (tmp_path / "b" / folder / f"{item['name']}.png").read_bytes()
            assert a == b
    assert first["items"] == second["items"][:2]


@pytest.mark.parametrize("size", ["12x40", "abc", "100"])
def test_bm_synth_rejects_bad_sizes_with_a_usage_error(tmp_path, size):
    result = CliRunner().invoke(bm_synth, ["-o", str(tmp_path), "--size", size, "--quiet"])
    assert result.exit_code == 2 and "size" in result.output.lower()
    assert not (tmp_path / "manifest.json").exists()
