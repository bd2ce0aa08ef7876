"""Held-out evaluation: the ensemble uses the checkpoint's weights, nothing is re-chosen."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tr_fixtures import write_dataset
from bonemarrow.runtime.labels import CLASSES
from bonemarrow.runtime.metrics import evaluate_pair
from bonemarrow.training.checkpoint import save_checkpoint
from bonemarrow.training.evaluate import evaluate_checkpoint, main
from bonemarrow.training.models import build_model
from bonemarrow.training.validate import ENSEMBLE


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds", {"train": 1, "val": 1, "test": 2}, height=64, width=96)


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0)])
def test_ensemble_with_one_hot_weights_equals_that_member(tmp_path, dataset, weights):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = build_model("compact", unet_features=4)
    model.set_member_weights(list(weights))
    save_checkpoint(tmp_path / "m.pt", model, {"tile": 64})
    report = evaluate_checkpoint(tmp_path / "m.pt", dataset, "test", progress=False)
    chosen = model.member_names[weights.index(1.0)]
    assert report["member_weights"][chosen] == 1.0
    assert len(report["per_image"][ENSEMBLE]) == 2
    for ours, member in zip(report["per_image"][ENSEMBLE], report["per_image"][chosen]):
        assert ours["confusion"] == member["confusion"]
    summary = report["summary"][ENSEMBLE]
    errors = [r["relative_density_error"] for r in report["per_image"][ENSEMBLE]]
    assert summary["density_error_max"] == pytest.approx(np.nanmax(errors), nan_ok=True)
    for name in CLASSES:
        per_image = [r["dice"][name] for r in report["per_image"][ENSEMBLE]]
        assert summary["dice"][name] == pytest.approx(np.nanmean(per_image), nan_ok=True)


def test_cli_prints_a_row_per_member_and_writes_json(tmp_path, dataset):
    model = build_model("compact", unet_features=4)
    save_checkpoint(tmp_path / "m.pt", model, {"tile": 64})
    result = CliRunner().invoke(main, [str(tmp_path / "m.pt"), str(dataset), "-o", str(tmp_path / "r.json"), "-q"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [*model.member_names, ENSEMBLE]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["split"] == "test" and set(report["summary"]) == {*model.member_names, ENSEMBLE}


def test_cli_refuses_a_bad_checkpoint_in_one_line(tmp_path, dataset):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, [str(tmp_path / "bad.pt"), str(dataset)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1


def test_summary_matches_runtime_metrics():
    from bonemarrow.training.evaluate import summarise

    truth = np.array([[0, 1, 1, 3]], dtype=np.uint8)
    rows = [evaluate_pair(truth, truth), evaluate_pair(np.array([[0, 1, 3, 3]], dtype=np.uint8), truth)]
    summary = summarise(rows)
    assert summary["density_error_mean"] == pytest.approx(0.5 * (0 + abs(1 / 3 - 2 / 3) / (2 / 3)))
    assert summary["density_error_max"] == pytest.approx(0.5)
    assert summary["dice"]["fat"] != summary["dice"]["fat"]  # absent everywhere: NaN
