"""Training: the loss falls, a resumed run equals an uninterrupted one, run outputs, CLI errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bonemarrow.training.checkpoint import load_checkpoint, read_checkpoint
from bonemarrow.training.cli_train import main
from bonemarrow.training.trainer import Trainer, TrainingError, TrainSettings

TINY = {"unet_features": 4}


def _settings(**changes) -> TrainSettings:
    base = dict(model_overrides=dict(TINY), steps=4, batch_size=2, crop=64, val_every=2, val_tile=64, lr=3e-3)
    base.update(changes)
    return TrainSettings(**base)


def _fixed_batch_loss(trainer: Trainer, images, labels) -> float:
    trainer.model.train()
    with torch.no_grad():
        logits = trainer.model.member_logits(torch.from_numpy(images))
        return sum(trainer.loss.from_logits(v, torch.from_numpy(labels)).item() for v in logits.values())


@pytest.mark.parametrize("mode", ["joint", "sequential"])
def test_a_few_steps_lower_the_loss(tiny_dataset, tmp_path, mode):
    settings = _settings(steps=12, val_every=1000, augment="none", mode=mode,
                         model_overrides={**TINY, "members": ["unet"]} if mode == "joint" else dict(TINY))
    trainer = Trainer(tiny_dataset, tmp_path / "run", settings, device="cpu", quiet=True)
    images, labels = trainer.sampler.batch(10**6, 4)
    before = _fixed_batch_loss(trainer, images, labels)
    trainer.run()
    after = _fixed_batch_loss(trainer, images, labels)
    assert trainer.step == 12
    assert after < 0.85 * before, (before, after)


def test_resumed_run_matches_uninterrupted_run(tiny_dataset, tmp_path):
    whole = Trainer(tiny_dataset, tmp_path / "whole", _settings(), device="cpu", quiet=True)
    whole.run()
    first = Trainer(tiny_dataset, tmp_path / "split", _settings(), device="cpu", quiet=True, stop_after=3)
    first.run()
    assert read_checkpoint(tmp_path / "split" / "last.pt")["step"] == 3
    second = Trainer(tiny_dataset, tmp_path / "split", _settings(), device="cpu", quiet=True, resume=True)
    assert second.step == 3
    second.run()
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert (tmp_path / "whole" / "metrics.csv").read_text() == (tmp_path / "split" / "metrics.csv").read_text()
    # And it really trained: the weights moved away from a fresh model's.
    fresh = Trainer(tiny_dataset, tmp_path / "fresh", _settings(), device="cpu", quiet=True).model.state_dict()
    assert not torch.equal(fresh["members.unet.head.weight"], a["members.unet.head.weight"])


def test_run_folder_outputs(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_dataset, run, _settings(), device="cpu", quiet=True)
    row = trainer.run()
    for name in ("last.pt", "best_density.pt", "best_loss.pt", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["2", "4"]
    for who in ("unet", "deeplabv3", "ensemble"):
        assert f"{who}/dice_bone" in rows[0] and f"{who}/density_error" in rows[0]
    model, config = load_checkpoint(run / "best_loss.pt")
    weights = [m["weight"] for m in config["members"]]
    assert sum(weights) == pytest.approx(1.0)
    assert config["dataset_sha256"] == trainer.dataset.manifest_sha256
    assert config["tile"] == 64 and config["divisor"] == 32
    last_model, last_config = load_checkpoint(run / "last.pt")
    assert last_config["step"] == 4
    assert np.allclose(last_model.member_weights.numpy(), [row["weight_unet"], row["weight_deeplabv3"]])


def test_run_folder_rules(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(tiny_dataset, run, _settings(), device="cpu", quiet=True, resume=True)
    Trainer(tiny_dataset, run, _settings(steps=2), device="cpu", quiet=True).run()
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(tiny_dataset, run, _settings(), device="cpu", quiet=True)
    with pytest.raises(TrainingError, match="lr 0.1 differs from the run's 0.003"):
        Trainer(tiny_dataset, run, _settings(lr=0.1), device="cpu", quiet=True, resume=True, given=frozenset({"lr"}))
    with pytest.raises(TrainingError, match="at least 2"):
        Trainer(tiny_dataset, tmp_path / "other", _settings(batch_size=1), device="cpu", quiet=True)
    with pytest.raises(TrainingError, match="multiple of the model's divisor 32"):
        Trainer(tiny_dataset, tmp_path / "other", _settings(crop=48), device="cpu", quiet=True)


def test_cli_trains_and_reports_unusable_input(tiny_dataset, tmp_path):
    runner = CliRunner()
    common = ["--unet-features", "4", "--members", "unet", "--steps", "2", "--val-every", "2", "--crop", "64",
              "--batch-size", "2", "--val-tile", "64", "--device", "cpu", "-q"]
    result = runner.invoke(main, [str(tiny_dataset), "-o", str(tmp_path / "run"), *common])
    assert result.exit_code == 0, result.output
    _, config = load_checkpoint(tmp_path / "run" / "last.pt")
    assert [m["name"] for m in config["members"]] == ["unet"]

    result = runner.invoke(main, [str(tiny_dataset), "-o", str(tmp_path / "run3"), "--class-weights", "1,2"])
    assert result.exit_code == 2 and "class weights" in result.output

    (tmp_path / "bad.pt").write_text("nonsense")
    result = runner.invoke(main, [str(tiny_dataset), "-o", str(tmp_path / "run4"), *common, "--members",
                                  "unet,deeplabv3", "--backbone-weights", str(tmp_path / "bad.pt")])
    assert result.exit_code == 2 and "not a PyTorch state dict" in result.output

    (tiny_dataset / "manifest.json").write_text('{"format_version": 1, "items": []}')
    result = runner.invoke(main, [str(tiny_dataset), "-o", str(tmp_path / "run2"), *common])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no items in the 'train' split" in result.output


def test_resume_keeps_saved_validation_settings_unless_given(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_dataset, run, _settings(val_every=2), device="cpu", quiet=True, stop_after=1).run()
    # The CLI passes its defaults for options not on the command line; only `given` ones may change.
    kept = Trainer(tiny_dataset, run, _settings(val_every=250), device="cpu", quiet=True, resume=True)
    assert kept.settings.val_every == 2
    changed = Trainer(tiny_dataset, run, _settings(val_every=3), device="cpu", quiet=True, resume=True,
                      given=frozenset({"val_every"}))
    assert changed.settings.val_every == 3
