"""bm-eval: metrics per image and overall, files written, bad label files reported."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bonemarrow.runtime.cli.eval import main
from bonemarrow.runtime.io.labels import write_label_png


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    truths = {}
    for i in range(3):
        truth = rng.integers(0, 4, (30, 40), dtype=np.uint8)
        predicted = truth.copy()
        predicted[: 5 * i] = 1  # image i: more bone predicted the larger i
        write_label_png(gt / f"s{i}.png", truth)
        write_label_png(pred / f"s{i}_labels.png", predicted)
        truths[f"s{i}"] = (predicted, truth)
    cv2.imwrite(str(pred / "s0_overlay.png"), np.zeros((30, 40, 3), np.uint8))  # ignored
    return tmp_path, pred, gt, truths


def test_metrics_files_and_charts(folders):
    tmp, pred, gt, truths = folders
    result = CliRunner().invoke(main, [str(pred), str(gt), "-o", str(tmp / "out")])
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp / "out/eval.json").read_text())
    images = {r["name"]: r for r in document["images"]}
    assert sorted(images) == ["s0", "s1", "s2"]
    assert images["s0"]["dice"] == {c: 1.0 for c in ("background", "bone", "fat", "other")}
    assert images["s0"]["relative_density_error"] == 0.0
    predicted, truth = truths["s2"]
    tissue_p, tissue_t = (predicted > 0).sum(), (truth > 0).sum()
    density_p, density_t = (predicted == 1).sum() / tissue_p, (truth == 1).sum() / tissue_t
    assert images["s2"]["predicted_density"] == pytest.approx(density_p)
    assert images["s2"]["relative_density_error"] == pytest.approx(abs(density_p - density_t) / density_t)
    bone_tp = ((predicted == 1) & (truth == 1)).sum()
    assert images["s2"]["dice"]["bone"] == pytest.approx(2 * bone_tp / ((predicted == 1).sum() + (truth == 1).sum()))
    summary = document["summary"]
    assert summary["mean_dice"]["bone"] == pytest.approx(np.mean([images[n]["dice"]["bone"] for n in images]))
    assert np.array(summary["confusion"]).sum() == 3 * 30 * 40
    assert summary["density_correlation"] is not None
    lines = (tmp / "out/eval.csv").read_text().splitlines()
    assert lines[0].startswith("name,dice_background") and lines[-1].startswith("MEAN") and len(lines) == 5
    for chart in ("dice_per_image.png", "density_error.png", "density_scatter.png", "confusion.png"):
        picture = cv2.imread(str(tmp / "out" / chart))
        assert picture is not None and picture.shape[0] > 100 and picture.std() > 0


def test_bad_and_unmatched_files_are_reported(folders):
    tmp, pred, gt, _ = folders
    (pred / "s1_labels.png").write_bytes(b"")
    write_label_png(pred / "s2_labels.png", np.zeros((10, 10), np.uint8))  # wrong size
    write_label_png(pred / "extra_labels.png", np.zeros((10, 10), np.uint8))
    result = CliRunner().invoke(main, [str(pred), str(gt), "-o", str(tmp / "out"), "--no-charts"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("empty" in e for e in errors) and any("differs" in e for e in errors)
    assert "without ground truth: extra" in result.stderr
    assert json.loads((tmp / "out/eval.json").read_text())["summary"]["images"] == 1
    assert not (tmp / "out/dice_per_image.png").exists()


def test_no_pairs_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(main, [str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no readable" in result.stderr


def test_without_matplotlib_csv_and_json_are_still_written(folders, monkeypatch):
    tmp, pred, gt, _ = folders
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(main, [str(pred), str(gt), "-o", str(tmp / "out")])
    assert result.exit_code == 0 and "charts skipped" in result.stderr
    assert (tmp / "out/eval.csv").is_file() and (tmp / "out/eval.json").is_file()
