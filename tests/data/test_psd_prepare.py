"""bm-prepare: PSD layer roles, offsets, thresholds, overlaps and failures; the bm-synth --psd round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
pytest.importorskip("psd_tools", reason="psd-tools is not installed (pip install 'bonemarrow-seg[train]')")
from click.testing import CliRunner
from PIL import Image
from psd_tools import PSDImage
from psd_tools.api.layers import PixelLayer

from bonemarrow.runtime.labels import BACKGROUND, BONE, FAT, OTHER
from bonemarrow.training.cli_prepare import main as bm_prepare
from bonemarrow.training.cli_synth import main as bm_synth
from bonemarrow.training.dataset_io import load_item, read_manifest
from bonemarrow.training.psd.convert import ConversionError, convert_psd
from bonemarrow.training.psd.synthetic import PsdLayout, write_label_psd


def toy_biopsy(width: int = 48, height: int = 32):
    """A tiny hand-made biopsy: a tissue band with a bone bar and a fat patch touching it."""
    labels = np.zeros((height, width), np.uint8)
    labels[6:26, 4:44] = OTHER
    labels[10:22, 8:16] = BONE
    labels[12:20, 16:30] = FAT
    labels[14:17, 34:38] = BACKGROUND  # a lumen inside the core
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return rgb, labels


def write(tmp_path: Path, name: str = "toy", **layout) -> tuple[Path, np.ndarray, np.ndarray]:
    rgb, labels = toy_biopsy()
    path = tmp_path / f"{name}.psd"
    write_label_psd(path, rgb, labels, PsdLayout(**layout), np.random.default_rng(1))
    return path, rgb, labels


def roles_of(conversion) -> dict[str, tuple[str, str]]:
    return {role: (found["name"], found["found_by"]) for role, found in conversion.roles.items()}


ANONYMOUS = {"scan": "Layer 0", "tissue": "Layer 1", "bone": "Layer 2", "fat": "Layer 3"}


@pytest.mark.parametrize("names, order, expected_by", [
    ({"scan": "Background", "tissue": "no background", "bone": "bone", "fat": "fat"},
     ("scan", "tissue", "bone", "fat"), {"scan": "name", "tissue": "name", "bone": "name", "fat": "name"}),
    ({"scan": "RAW Scan", "tissue": "No Background", "bone": "Bone", "fat": "FAT"},
     ("scan", "fat", "bone", "tissue"), {"scan": "name", "tissue": "name", "bone": "name", "fat": "name"}),
    (ANONYMOUS, ("scan", "tissue", "bone", "fat"),
     {"scan": "structure", "tissue": "structure", "bone": "structure", "fat": "structure"}),
    (ANONYMOUS, ("scan", "fat", "bone", "tissue"),
     {"scan": "structure", "tissue": "structure", "bone": "structure", "fat": "structure"}),
    ({"scan": "Background", "tissue": "Layer 1", "bone": "Layer 2", "fat": "Layer 3"},
     ("scan", "bone", "fat", "tissue"), {"scan": "name", "tissue": "structure", "bone": "structure",
                                         "fat": "structure"}),
    ({"scan": "Original", "tissue": "Layer 2", "bone": "bone", "fat": "Layer 1"},
     ("scan", "fat", "tissue", "bone"), {"scan": "name", "tissue": "structure", "bone": "name", "fat": "structure"}),
])
def test_roles_by_name_and_by_structure_give_the_true_labels(tmp_path, names, order, expected_by):
    path, rgb, labels = write(tmp_path, names=names, order=order)
    result = convert_psd(path)
    assert np.array_equal(result.labels, labels)
    assert np.array_equal(result.rgb, rgb)
    assert roles_of(result) == {role: (names[role], expected_by[role]) for role in names}


def test_the_bottom_background_layer_is_the_scan_not_the_tissue(tmp_path):
    names = {"scan": "Background", "tissue": "Layer 1", "bone": "Layer 2", "fat": "Layer 3"}
    path, _, labels = write(tmp_path, names=names)
    result = convert_psd(path)
    assert result.roles["scan"]["name"] == "Background" and result.roles["tissue"]["name"] == "Layer 1"
    assert np.array_equal(result.labels, labels)


@pytest.mark.parametrize("crop", ["full", "bbox", "beyond"])
@pytest.mark.parametrize("fat_mask_rect", ["bbox", "canvas"])
def test_layers_land_at_their_offsets_and_masks_use_their_default_colour(tmp_path, crop, fat_mask_rect):
    path, _, labels = write(tmp_path, crop={"tissue": crop, "bone": crop, "fat": crop}, fat_mask_rect=fat_mask_rect)
    assert np.array_equal(convert_psd(path).labels, labels)


def test_alpha_and_mask_threshold_at_128(tmp_path):
    path, _, labels = write(tmp_path, soft_alpha=True, fat_mask_rect="canvas")
    assert np.array_equal(convert_psd(path).labels, labels)


def test_fat_wins_where_bone_and_fat_overlap_unless_told_otherwise(tmp_path):
    path, _, labels = write(tmp_path, bone_over_fat=True)
    fat_wins = convert_psd(path)
    assert fat_wins.overlap_pixels > 0
    assert np.array_equal(fat_wins.labels, labels)
    bone_wins = convert_psd(path, overlap_winner="bone")
    changed = bone_wins.labels != labels
    assert changed.sum() == fat_wins.overlap_pixels
    assert (labels[changed] == FAT).all() and (bone_wins.labels[changed] == BONE).all()


def test_layers_option_overrides_misleading_names(tmp_path):
    names = {"scan": "Background", "tissue": "no background", "bone": "fat (old)", "fat": "bone?"}
    path, _, labels = write(tmp_path, names=names)
    wrong = convert_psd(path)  # the names claim swapped roles: the labels come out wrong
    assert wrong.roles["bone"]["name"] == "bone?" and not np.array_equal(wrong.labels, labels)
    right = convert_psd(path, {"bone": "fat (old)", "fat": "#3"})
    assert np.array_equal(right.labels, labels)
    assert right.roles["bone"]["found_by"] == "option" and right.roles["fat"]["found_by"] == "option"


def _psd_with(tmp_path: Path, name: str, layers: list[tuple], size=(48, 32)) -> Path:
    """A PSD from (name, RGBA or RGB array, left, top[, layer mask]) layers, bottom first."""
    psd = PSDImage.new("RGBA", size)
    for layer_name, pixels, left, top, *mask in layers:
        layer = PixelLayer.frompil(Image.fromarray(pixels), psd, name=layer_name, top=top, left=left)
        if mask:
            layer.create_mask(Image.fromarray(np.where(mask[0], 255, 0).astype(np.uint8)), top=0, left=0)
    path = tmp_path / f"{name}.psd"
    psd.save(str(path))
    return path


def _rgba(mask: np.ndarray) -> np.ndarray:
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[..., 3] = np.where(mask, 255, 0)
    return out


def test_failures_have_one_clear_reason(tmp_path):
    rgb, labels = toy_biopsy()
    scan = rgb
    tissue, bone = _rgba(labels > 0), _rgba(labels == BONE)
    fat = ("Layer 3", _rgba(np.ones_like(labels, bool)), 0, 0, labels == FAT)
    cases = {
        "missing_fat": ([("Background", scan, 0, 0), ("tissue", tissue, 0, 0), ("bone", bone, 0, 0)], "no fat layer"),
        "small_scan": ([("Background", scan[:20, :30], 5, 4), ("tissue", tissue, 0, 0), ("bone", bone, 0, 0), fat],
                       "scan layer 'Background' is 30x20 at (5, 4) but the canvas is 48x32"),
        "two_bones": ([("Background", scan, 0, 0), ("bone", tissue, 0, 0), ("Bone 2", bone, 0, 0), fat],
                      "more than one layer is named like the bone"),
    }
    assert np.array_equal(convert_psd(_psd_with(tmp_path, "fine", [("Background", scan, 0, 0),
                                                                   ("tissue", tissue, 0, 0), ("bone", bone, 0, 0),
                                                                   fat])).labels, labels)
    for name, (layers, reason) in cases.items():
        with pytest.raises(ConversionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            convert_psd(_psd_with(tmp_path, name, layers))
    good, _, _ = write(tmp_path, "good")
    with pytest.raises(ConversionError, match="fat layer #3 'fat' is empty"):
        convert_psd(write_label_psd_empty(tmp_path, FAT))
    with pytest.raises(ConversionError, match="tissue layer .* is empty"):
        convert_psd(write_label_psd_empty(tmp_path, "tissue"))
    no_bone = write_label_psd_empty(tmp_path, BONE)
    assert (convert_psd(no_bone).labels == BONE).sum() == 0  # a section may miss the trabeculae
    with pytest.raises(ConversionError, match="bone layer .* is empty"):
        convert_psd(no_bone, allow_empty=())
    corrupt = tmp_path / "corrupt.psd"
    corrupt.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ConversionError, match="not a readable PSD|cannot be decoded"):
        convert_psd(corrupt)


def write_label_psd_empty(tmp_path: Path, what) -> Path:
    """The toy biopsy with one class (or the whole tissue) removed from its layers but not from the scan."""
    rgb, labels = toy_biopsy()
    labels = labels.copy()
    labels[(labels > 0) if what == "tissue" else (labels == what)] = BACKGROUND if what == "tissue" else OTHER
    path = tmp_path / f"empty_{what}.psd"
    write_label_psd(path, rgb, labels, PsdLayout(fat_mask_rect="canvas"), np.random.default_rng(0))
    return path


def test_bm_prepare_converts_the_good_files_reports_the_bad_and_exits_1(tmp_path):
    source = tmp_path / "psd"
    source.mkdir()
    write(source, "good_a")
    write(source, "good_b", names=ANONYMOUS, order=("scan", "bone", "tissue", "fat"), crop={
        "tissue": "bbox", "bone": "beyond", "fat": "bbox"})
    (source / "garbage.psd").write_bytes(b"8BPS not really")
    write_label_psd_empty(source, "tissue").rename(source / "no_tissue.psd")
    runner = CliRunner()
    result = runner.invoke(bm_prepare, [str(source), "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and any("garbage.psd: not a readable PSD" in line for line in lines)
    manifest = read_manifest(tmp_path / "out")
    assert [item["name"] for item in manifest["items"]] == ["good_a", "good_b"]
    assert {failure["source"] for failure in manifest["failures"]} == {"garbage.psd", "no_tissue.psd"}
    assert all(failure["reason"] and len(failure["sha256"]) == 64 for failure in manifest["failures"])
    _, truth = toy_biopsy()
    for item in manifest["items"]:
        assert np.array_equal(load_item(tmp_path / "out", item)[1], truth)
        assert item["roles"]["fat"]["found_by"] in ("name", "structure")
        assert item["source"].endswith(".psd") and len(item["sha256"]) == 64


def test_bm_prepare_usage_errors_exit_2(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    assert runner.invoke(bm_prepare, [str(tmp_path / "empty"), "-o", str(tmp_path / "out")]).exit_code == 2
    write(tmp_path / "empty", "one")
    bad = runner.invoke(bm_prepare, [str(tmp_path / "empty"), "-o", str(tmp_path / "out"), "--layers", "skin=x"])
    assert bad.exit_code == 2 and "--layers" in bad.output


def test_adding_files_never_moves_existing_items_between_splits(tmp_path):
    source = tmp_path / "psd"
    source.mkdir()
    for index in range(4):
        write(source, f"case_{index}")
    runner = CliRunner()
    assert runner.invoke(bm_prepare, [str(source), "-o", str(tmp_path / "a"), "-q"]).exit_code == 0
    for index in range(4, 12):
        write(source, f"case_{index}")
    assert runner.invoke(bm_prepare, [str(source), "-o", str(tmp_path / "b"), "-q"]).exit_code == 0
    before = {item["name"]: item["split"] for item in read_manifest(tmp_path / "a")["items"]}
    after = {item["name"]: item["split"] for item in read_manifest(tmp_path / "b")["items"]}
    assert len(after) == 12 and all(after[name] == split for name, split in before.items())
    assert set(after.values()) >= {"train"}


def test_round_trip_bm_synth_psd_then_bm_prepare_gives_the_generator_truth(tmp_path):
    runner = CliRunner()
    synth = runner.invoke(bm_synth, ["-o", str(tmp_path / "synth"), "--count", "6", "--size", "384x192",
                                     "--seed", "1", "--psd", "--quiet"])
    assert synth.exit_code == 0, synth.output
    # Small generated cores can be all marrow or all fat: empty label layers are part of the round trip.
    prepared = runner.invoke(bm_prepare, [str(tmp_path / "synth" / "psd"), "-o", str(tmp_path / "prepared"), "-q",
                                          "--allow-empty", "bone,fat"])
    assert prepared.exit_code == 0, prepared.output
    generated = read_manifest(tmp_path / "synth")
    converted = {item["name"]: item for item in read_manifest(tmp_path / "prepared")["items"]}
    layouts = {json.dumps(item["psd"]["layout"]["order"]) for item in generated["items"]}
    assert len(layouts) > 1  # the layer order really varied
    for item in generated["items"]:
        rgb, labels = load_item(tmp_path / "synth", item)
        rgb_back, labels_back = load_item(tmp_path / "prepared", item["name"])
        assert np.array_equal(labels_back, labels) and np.array_equal(rgb_back, rgb)
        assert converted[item["name"]]["fractions"] == item["fractions"]


def test_bm_prepare_options_reach_the_converter(tmp_path):
    source = tmp_path / "psd"
    source.mkdir()
    write(source, "overlap", bone_over_fat=True)
    write_label_psd_empty(tmp_path, BONE).rename(source / "no_bone.psd")
    runner = CliRunner()
    lenient = runner.invoke(bm_prepare, [str(source), "-o", str(tmp_path / "a"), "-q", "--overlap-winner", "bone"])
    assert lenient.exit_code == 0, lenient.output
    item = next(item for item in read_manifest(tmp_path / "a")["items"] if item["name"] == "overlap")
    assert item["overlap_winner"] == "bone" and item["overlap_pixels"] > 0
    _, truth = toy_biopsy()
    assert (load_item(tmp_path / "a", "overlap")[1] == BONE).sum() == (truth == BONE).sum() + item["overlap_pixels"]
    strict = runner.invoke(bm_prepare, [str(source), "-o", str(tmp_path / "b"), "-q", "--allow-empty", "none"])
    assert strict.exit_code == 1 and "no_bone.psd: bone layer" in strict.output


def test_names_that_differ_only_in_case_fail_the_second_and_the_manifest_matches_the_files(tmp_path):
    """Issue 13 item 7: X.psd and X.PSD both wrote images/X.png and the manifest listed both."""
    source = tmp_path / "psd"
    source.mkdir()
    write(source, "X")
    rgb, labels = toy_biopsy()
    other = labels.copy()
    other[other == BONE] = OTHER  # the second file's labels differ, so an overwrite would show
    write_label_psd(source / "X.PSD", rgb, other, PsdLayout(), np.random.default_rng(1))
    result = CliRunner().invoke(bm_prepare, [str(source), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line == (f"error: {source / 'X.psd'}: its name clashes with X.PSD "
                    "(both would be written to images/X.png); rename one")
    manifest = read_manifest(tmp_path / "out")
    assert [(item["name"], item["source"]) for item in manifest["items"]] == [("X", "X.PSD")]
    assert [failure["source"] for failure in manifest["failures"]] == ["X.psd"]
    assert np.array_equal(load_item(tmp_path / "out", "X")[1], other)  # the file is the listed item's
    assert manifest["items"][0]["counts"] == np.bincount(other.ravel(), minlength=4).tolist()


def test_a_rerun_drops_the_items_and_files_of_an_earlier_run(tmp_path):
    source = tmp_path / "psd"
    source.mkdir()
    for name in ("keep", "gone", "broken"):
        write(source, name)
    runner = CliRunner()
    out = tmp_path / "out"
    assert runner.invoke(bm_prepare, [str(source), "-o", str(out), "-q"]).exit_code == 0
    (source / "gone.psd").unlink()  # removed from the folder
    (source / "broken.psd").write_bytes(b"8BPS not any more")  # replaced by a file that fails
    result = runner.invoke(bm_prepare, [str(source), "-o", str(out)])
    assert result.exit_code == 1
    manifest = read_manifest(out)
    assert [item["name"] for item in manifest["items"]] == ["keep"]
    assert [failure["source"] for failure in manifest["failures"]] == ["broken.psd"]
    for folder in ("images", "labels"):
        assert sorted(p.name for p in (out / folder).iterdir()) == ["keep.png"]
    assert "removed 2 item(s) of an earlier run" in result.output


def test_bm_prepare_on_two_files_gives_bm_train_a_val_item(tmp_path):
    """Issue 13 item 21: two annotations whose names both hash to train."""
    source = tmp_path / "psd"
    source.mkdir()
    write(source, "a")
    write(source, "g")
    result = CliRunner().invoke(bm_prepare, [str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    splits = {item["name"]: item["split"] for item in read_manifest(tmp_path / "out")["items"]}
    assert splits == {"a": "val", "g": "train"}  # a: the lower hash of the two (0.79 < 0.80)
    assert "note: a: moved to the 'val' split" in result.output
