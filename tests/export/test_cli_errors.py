"""Bad input to bm-export: one clear line, a meaningful exit code, and nothing written."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from bonemarrow.export.cli import main


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_missing_checkpoint(tmp_path, out_dir):
    result = _run(tmp_path / "nope.pt", "-o", out_dir / "new" / "folders" / "m.onnx", "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    assert _error_lines(result) == [f"error: {tmp_path / 'nope.pt'}: no such checkpoint file"]
    assert list(out_dir.iterdir()) == []  # not even the output's folders


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04" + b"\0" * 64])
def test_corrupt_checkpoint(tmp_path, out_dir, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    result = _run(bad, "-o", out_dir / "m.onnx", "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    (line,) = _error_lines(result)
    assert line.startswith(f"error: {bad}:") and "checkpoint" in line
    assert list(out_dir.iterdir()) == []


def test_truncated_checkpoint(tmp_path, out_dir, compact_checkpoint):
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(compact_checkpoint.read_bytes()[:100_000])
    result = _run(bad, "-o", out_dir / "m.onnx", "-q")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1 and str(bad) in result.output
    assert list(out_dir.iterdir()) == []


def test_checkpoint_of_another_preset(out_dir, compact_checkpoint):
    result = _run(compact_checkpoint, "-o", out_dir / "m.onnx", "--preset", "seed", "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    assert _error_lines(result) == [
        f"error: {compact_checkpoint}: holds a 'compact' model, not the requested preset 'seed'"
    ]
    assert list(out_dir.iterdir()) == []


def test_unknown_preset_name_is_a_usage_error(out_dir, compact_checkpoint):
    result = _run(compact_checkpoint, "-o", out_dir / "m.onnx", "--preset", "huge")
    assert result.exit_code == 2 and "huge" in result.output


def test_unwritable_output(tmp_path, compact_checkpoint):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file, not a folder")
    result = _run(compact_checkpoint, "-o", blocker / "m.onnx", "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    (line,) = _error_lines(result)
    assert line.startswith(f"error: {blocker / 'm.onnx'}: cannot write there")
    assert blocker.read_text() == "I am a file, not a folder"


def test_output_that_is_a_folder(out_dir, compact_checkpoint):
    result = _run(compact_checkpoint, "-o", out_dir, "-q")
    assert result.exit_code == 2 and "is a folder" in result.output
    assert list(out_dir.iterdir()) == []


def test_int8_without_calibration_is_a_usage_error(out_dir, compact_checkpoint):
    result = _run(compact_checkpoint, "-o", out_dir / "m.onnx", "--precision", "int8")
    assert result.exit_code == 2 and "--calibration" in result.output
    assert list(out_dir.iterdir()) == []


def test_calibration_folder_that_is_not_a_dataset(tmp_path, out_dir, compact_checkpoint):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(compact_checkpoint, "-o", out_dir / "m.onnx", "--precision", "int8", "--calibration", empty, "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    assert _error_lines(result) == [f"error: {empty}: not a dataset folder (no manifest.json)"]
    assert list(out_dir.iterdir()) == []


def test_tile_that_is_not_a_multiple_of_the_divisor(out_dir, compact_checkpoint):
    result = _run(compact_checkpoint, "-o", out_dir / "m.onnx", "--tile", "500", "-q")
    assert result.exit_code == 2  # unusable input, like a usage error
    assert _error_lines(result) == ["error: tile 500 is not a multiple of the model's divisor 32"]
    assert list(out_dir.iterdir()) == []


def _hostile(path, **config):
    import torch

    torch.save({"format": "bonemarrow-checkpoint", "format_version": 1,
                "config": {"preset": "compact", **config}, "model": {"x": torch.zeros(1)}}, path)
    return path


def test_checkpoint_tile_that_is_not_a_number(tmp_path, out_dir, compact_checkpoint):
    """Issue 13 item 11: "tile": "big" in the config was a ValueError traceback."""
    import torch

    payload = torch.load(compact_checkpoint, weights_only=True)
    payload["config"]["tile"] = "big"
    bad = tmp_path / "big.pt"
    torch.save(payload, bad)
    result = _run(bad, "-o", out_dir / "m.onnx", "-q")
    assert result.exit_code == 2
    assert _error_lines(result) == [
        f"error: {bad}: unusable checkpoint config: tile must be an integer from 32 to 8192, got 'big'"]
    assert list(out_dir.iterdir()) == []


def test_tiny_checkpoint_asking_for_a_huge_model_is_refused_before_building(tmp_path, out_dir, monkeypatch):
    """Issue 13 item 13: 1.4 KB with unet_features 256 built a 2.7 GB model before its weights were checked."""
    import bonemarrow.training.checkpoint as checkpoint_mod

    monkeypatch.setattr(checkpoint_mod, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    bad = _hostile(tmp_path / "huge.pt", overrides={"unet_features": 256, "members": ["unet"]})
    assert bad.stat().st_size < 4096
    result = _run(bad, "-o", out_dir / "m.onnx", "-q")
    assert result.exit_code == 2
    assert _error_lines(result) == [
        f"error: {bad}: unusable checkpoint config: unet_features must be an integer from 1 to 64, got 256"]
    assert list(out_dir.iterdir()) == []


def test_help_documents_the_exit_codes():
    text = " ".join(_run("--help").output.split())
    assert "Exit codes: 0 written; 1 the export failed; 2 usage error or unusable checkpoint" in text
    assert "3 the parity gate failed" in text
