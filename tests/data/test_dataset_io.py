"""The dataset folder: hash-based splits, items and manifest, and bm-synth writing it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bonemarrow.training.cli_synth import main as bm_synth
from bonemarrow.training.dataset_io import (PROMOTED_NOTE, ensure_val_item, items_in_split, load_item, read_manifest,
                                            remove_stale_items, split_for, write_item, write_manifest)
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


def _items(names: list[str]) -> list[dict]:
    return [{"name": name, "split": split_for(name)} for name in names]


def test_a_small_dataset_whose_hash_split_has_no_val_gets_one_val_item():
    """Issue 13 item 21: a, g, h all hash to train; bm-train would stop with an empty val split."""
    items = _items(["a", "g", "h"])
    assert [item["split"] for item in items] == ["train"] * 3
    promoted = ensure_val_item(items)
    assert promoted["name"] == "h" and promoted["split"] == "val"  # the lowest-hash train item
    assert promoted["split_note"] == PROMOTED_NOTE
    assert [item["split"] for item in items] == ["train", "train", "val"]
    assert ensure_val_item(items) is None  # deterministic and idempotent: val is no longer empty


def test_two_items_train_and_test_keep_their_train_item():
    items = _items(["a", "d"])  # train, test
    assert ensure_val_item(items)["name"] == "d"
    assert sorted(item["split"] for item in items) == ["train", "val"]


@pytest.mark.parametrize("names, fraction", [(["a"], 0.15), (["a", "g"], 0.0), (["a", "b"], 0.15)])
def test_nothing_moves_with_one_item_no_val_fraction_or_a_val_item(names, fraction):
    items = _items(names)
    before = [dict(item) for item in items]
    assert ensure_val_item(items, fraction) is None and items == before


def test_items_of_a_large_dataset_never_move():
    names = [f"biopsy_{index}" for index in range(40)]
    items = _items(names)
    assert ensure_val_item(items) is None
    assert all(item["split"] == split_for(item["name"]) for item in items)


def test_bm_synth_on_a_few_images_writes_a_val_item(tmp_path):
    result = CliRunner().invoke(bm_synth, ["-o", str(tmp_path / "d"), "--count", "3", "--size", "96x64", "--seed", "0"])
    assert result.exit_code == 0, result.output
    splits = [item["split"] for item in read_manifest(tmp_path / "d")["items"]]
    assert [split_for(f"synth_s0_{i:05d}") for i in range(3)].count("val") == 0  # the hash alone gives none
    assert splits.count("val") == 1 and "moved to the 'val' split" in result.output


def test_manifest_refuses_two_items_that_share_a_file(tmp_path):
    rgb, labels = generate_biopsy(1, 96, 64)
    first = write_item(tmp_path, "X", rgb, labels, source="X.psd")
    second = dict(first, name="x", source="x.psd")
    with pytest.raises(ValueError, match="would share images/x.png"):
        write_manifest(tmp_path, [first, second])
    assert not (tmp_path / "manifest.json").exists()


def test_bm_synth_rerun_with_fewer_images_removes_the_earlier_extra_items(tmp_path):
    runner = CliRunner()
    assert runner.invoke(bm_synth, ["-o", str(tmp_path), "--count", "3", "--size", "96x64", "-q"]).exit_code == 0
    assert runner.invoke(bm_synth, ["-o", str(tmp_path), "--count", "2", "--size", "96x64", "-q"]).exit_code == 0
    names = [item["name"] for item in read_manifest(tmp_path)["items"]]
    assert names == ["synth_s0_00000", "synth_s0_00001"]
    for folder in ("images", "labels"):
        assert sorted(p.stem for p in (tmp_path / folder).iterdir()) == names


def test_stale_item_removal_never_leaves_the_dataset(tmp_path):
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"keep")
    (tmp_path / "ds" / "images").mkdir(parents=True)
    assert remove_stale_items(tmp_path / "ds", ["../../precious", "..", ""]) == []
    assert outside.read_bytes() == b"keep"
