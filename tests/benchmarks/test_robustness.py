"""The robustness benchmark: one cell per checkpoint x hold-out, cached by content hashes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
pytest.importorskip("torch", reason="torch is not installed (pip install 'bonemarrow-seg[train]')")
import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bonemarrow.benchmarks import robustness
from bonemarrow.training.checkpoint import save_checkpoint
from bonemarrow.training.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tr_fixtures import write_dataset  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    torch.manual_seed(0)
    model = build_model("compact", unet_features=4, members=["unet"])
    checkpoint = root / "tiny.pt"
    save_checkpoint(checkpoint, model, {"tile": 64})
    first = write_dataset(root / "a", {"test": 2}, 64, 96, seed=1)
    second = write_dataset(root / "b", {"test": 1, "train": 1}, 64, 96, seed=2)
    return root, checkpoint, first, second


def test_table_cells_and_cache(inputs, monkeypatch):
    root, checkpoint, first, second = inputs
    out = root / "report"
    args = ["--checkpoint", f"tiny={checkpoint}", "--checkpoint", f"again={checkpoint}",
            "--holdout", f"first={first}", "--holdout", f"second={second}", "-o", str(out), "-q", "--threads", "1"]
    result = CliRunner().invoke(robustness.main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(out.with_suffix(".json").read_text())
    # Two checkpoints with the same bytes share their cells: two evaluations, four table cells.
    assert len(report["cache"]) == 2 and len(report["cells"]) == 4
    cell = robustness.cell_of(report, "tiny", "second")
    assert cell["summary"]["ensemble"]["images"] == 1  # the test split only
    markdown = out.with_suffix(".md").read_text()
    assert markdown.count("| tiny |") == 2 and "## first" in markdown and "## second" in markdown
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # A rerun finds every cell cached and evaluates nothing.
    def refuse(*_args, **_kwargs):
        raise AssertionError("evaluated again")
    monkeypatch.setattr("bonemarrow.training.evaluate.evaluate_checkpoint", refuse)
    assert CliRunner().invoke(robustness.main, args).exit_code == 0


def test_bad_names_and_missing_files_are_usage_errors(inputs):
    root, checkpoint, first, _ = inputs
    result = CliRunner().invoke(robustness.main, ["--checkpoint", str(checkpoint), "--holdout", f"a={first}",
                                                  "-o", str(root / "x")])
    assert result.exit_code == 2 and "NAME=PATH" in result.output
    result = CliRunner().invoke(robustness.main, ["--checkpoint", f"a={root / 'nope.pt'}", "--holdout",
                                                  f"a={first}", "-o", str(root / "x")])
    assert result.exit_code == 2 and "nope.pt: not found" in result.output
