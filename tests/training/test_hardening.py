"""Issue 13 in training: bounded checkpoint configs, the val-split hint, exit codes by exception type,
comparable curves and one density unit."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from click.testing import CliRunner

import bonemarrow.training.checkpoint as checkpoint_mod
from bonemarrow.training import cli_train
from bonemarrow.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from bonemarrow.training.evaluate import format_summary
from bonemarrow.training.models import ConfigError, build_model, resolve_config
from bonemarrow.training.plots import loss_pairs
from bonemarrow.training.trainer import Trainer, TrainingDiverged, TrainingError, TrainSettings

from tr_fixtures import write_dataset

TINY = {"unet_features": 4, "members": ["unet"]}


def hostile_checkpoint(path, **config):
    """A tiny file that claims whatever config it likes (1-2 KB: no real weights at all)."""
    torch.save({"format": "bonemarrow-checkpoint", "format_version": 1,
                "config": {"preset": "compact", **config}, "model": {"x": torch.zeros(1)}}, path)
    return path


@pytest.fixture
def no_building(monkeypatch):
    """Fail the test if a model gets built."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a model was built from {args} {kwargs}")

    monkeypatch.setattr(checkpoint_mod, "build_model", refuse)


@pytest.mark.parametrize("config, message", [
    ({"overrides": {"unet_features": 256}}, "unet_features must be an integer from 1 to 64, got 256"),
    ({"overrides": {"unet_features": 4.5}}, "unet_features must be an integer"),
    ({"overrides": {"unet_features": True}}, "unet_features must be an integer"),
    ({"overrides": {"deeplab_backbone": "resnet9000"}}, "unknown DeepLabv3 backbone 'resnet9000'"),
    ({"overrides": {"members": ["unet", "unet"]}}, "members must be distinct names"),
    ({"overrides": {"members": []}}, "members must be distinct names"),
    ({"overrides": {"member_weights": [-1, 2]}}, "member_weights must be 2 non-negative numbers"),
    ({"overrides": {"member_weights": [float("nan"), 1]}}, "member_weights must be 2 non-negative numbers"),
    ({"overrides": {"mean": ["a", 1, 2]}}, "mean must be 3 numbers"),
    ({"overrides": {"std": [0, 1, 1]}}, "std must be 3 numbers (0 < value <= 255)"),
    ({"overrides": {"depth": 99}}, "unknown model setting(s) ['depth']"),
    ({"overrides": "unet_features=256"}, "overrides must be a dictionary"),
    ({"preset": "gigantic"}, "unknown preset 'gigantic'"),
    ({"tile": "big"}, "tile must be an integer from 32 to 8192, got 'big'"),
    ({"tile": 10**9}, "tile must be an integer from 32 to 8192"),
    ({"divisor": 0}, "divisor must be an integer from 1 to 1024"),
    ({"members": [{"name": "unet", "weight": "heavy"}]}, "members' weights must be 1 non-negative numbers"),
])
def test_a_hostile_config_is_refused_in_one_line_before_anything_is_built(tmp_path, no_building, config, message):
    """Issue 13 items 11 and 13: a 1.4 KB file with unet_features 256 used to build a 2.7 GB model."""
    path = hostile_checkpoint(tmp_path / "hostile.pt", **config)
    assert path.stat().st_size < 4096
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: unusable checkpoint config: ") and message in text


def test_limits_allow_what_the_project_uses():
    for preset in ("compact", "seed"):
        resolve_config(preset)
    resolve_config("compact", unet_features=64, members=["deeplabv3"], deeplab_backbone="resnet50",
                   member_weights=[1.0], mean=[0, 0, 0], std=[255, 1, 1])
    with pytest.raises(ConfigError):
        build_model("compact", unet_features=65)


def test_the_shipped_style_config_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    save_checkpoint(path, build_model("compact", **TINY), {"tile": 64, "step": 3, "dataset": "x"})
    model, config = load_checkpoint(path)
    assert config["tile"] == 64 and model.member_names == ("unet",)


def test_resume_refuses_hostile_saved_settings_in_one_line(tmp_path):
    dataset = write_dataset(tmp_path / "ds", {"train": 2, "val": 1})
    run = tmp_path / "run"
    settings = TrainSettings(model_overrides=dict(TINY), steps=2, batch_size=2, crop=64, val_every=2, val_tile=64)
    Trainer(dataset, run, settings, device="cpu", quiet=True, stop_after=1).run()
    payload = read_checkpoint(run / "last.pt")
    for key, value, message in (("steps", 10**12, "--steps must be an integer"), ("crop", "wide", "--crop"),
                                ("surprise", 1, "unknown setting(s) ['surprise']")):
        hostile = dict(payload, settings={**payload["settings"], key: value})
        torch.save(hostile, run / "last.pt")
        with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]")) as info:
            Trainer(dataset, run, settings, device="cpu", quiet=True, resume=True)
        assert "\n" not in str(info.value)


def test_an_empty_val_split_error_says_how_to_fix_it(tmp_path):
    """Issue 13 item 21: bm-train stopped with "no items in the 'val' split" and no hint."""
    dataset = write_dataset(tmp_path / "ds", {"train": 3})
    result = CliRunner().invoke(cli_train.main, [str(dataset), "-o", str(tmp_path / "run"), "--device", "cpu", "-q"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "no items in the 'val' split" in line and "3 train, 0 val, 0 test" in line
    assert "--val-fraction" in line and '"split"' in line and "manifest.json" in line


@pytest.mark.parametrize("error, code", [
    (TrainingDiverged("training went wrong (any wording)"), 1),
    (TrainingError("the loss became nan at step 3, said a setting check"), 2),
])
def test_the_exit_code_comes_from_the_exception_type_not_its_text(tmp_path, monkeypatch, error, code):
    def run(self):
        raise error

    monkeypatch.setattr(Trainer, "__init__", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(Trainer, "run", run)
    result = CliRunner().invoke(cli_train.main, [str(tmp_path), "-o", str(tmp_path / "run"), "-q"])
    assert result.exit_code == code and result.output.strip() == f"error: {error}"


def test_help_does_not_import_torch_and_defaults_come_from_train_settings():
    import subprocess
    import sys

    code = ("import sys\nsys.modules['torch'] = None\nfrom bonemarrow.training.cli_train import main\n"
            "main(['--help'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    defaults = TrainSettings()
    assert f"Optimizer steps in total. [default: {defaults.steps}]" in text
    assert f"[default: {defaults.val_tile};" in text and f"[default: {defaults.preset}]" in text


def test_metrics_have_each_part_of_the_training_loss_to_set_beside_its_validation_loss(tmp_path):
    """Issue 13 item 26: curves.png drew the summed training loss against single validation losses."""
    dataset = write_dataset(tmp_path / "ds", {"train": 2, "val": 1})
    settings = TrainSettings(model_overrides={"unet_features": 4}, steps=2, batch_size=2, crop=64, val_every=2,
                             val_tile=64, augment="none")
    trainer = Trainer(dataset, tmp_path / "run", settings, device="cpu", quiet=True)
    row = trainer.run()
    pairs = loss_pairs(trainer.model.member_names)
    assert [who for who, _, _ in pairs] == ["unet", "deeplabv3", "ensemble"]
    for who, train_key, val_key in pairs:
        assert train_key == f"{who}/train_loss" and val_key == f"{who}/loss"
        assert math.isfinite(row[train_key]) and math.isfinite(row[val_key])
    # The optimised total is the sum of the parts: the quantity not to compare with one validation loss.
    assert row["train_loss"] == pytest.approx(sum(row[train] for _, train, _ in pairs), rel=1e-6)
    header = next(csv.reader((tmp_path / "run" / "metrics.csv").open()))
    assert {train for _, train, _ in pairs} <= set(header)
    line = trainer._summary_line(row, [])
    assert "density err" in line and "%" in line  # percent, as bm-eval prints it


def test_held_out_summary_prints_density_error_in_percent():
    summary = {"dice": {name: 0.9 for name in ("background", "bone", "fat", "other")},
               "density_error_mean": 0.084, "density_error_max": 0.264, "images": 2}
    text = format_summary({"summary": {"ensemble": summary}})
    assert "8.4%" in text and "26.4%" in text and "0.084" not in text


def test_resume_on_the_command_line_keeps_the_runs_settings_unless_typed(tmp_path):
    """Defaults now come from TrainSettings through click: only options really typed count as given."""
    dataset = write_dataset(tmp_path / "ds", {"train": 2, "val": 1})
    run = tmp_path / "run"
    common = ["--device", "cpu", "-q"]
    first = CliRunner().invoke(cli_train.main, [str(dataset), "-o", str(run), "--unet-features", "4", "--members",
                                                "unet", "--steps", "3", "--val-every", "2", "--crop", "64",
                                                "--batch-size", "2", "--val-tile", "64", "--stop-after", "1",
                                                "--augment", "none", *common])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(cli_train.main, [str(dataset), "-o", str(run), "--resume", *common])
    assert resumed.exit_code == 0, resumed.output
    saved = read_checkpoint(run / "last.pt")
    assert saved["step"] == 3 and saved["settings"]["val_every"] == 2 and saved["settings"]["augment"] == "none"
    refused = CliRunner().invoke(cli_train.main, [str(dataset), "-o", str(run), "--resume", "--lr", "0.5", *common])
    assert refused.exit_code == 2 and "lr 0.5 differs from the run's" in refused.output
