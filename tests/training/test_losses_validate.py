"""Loss functions, learning-rate schedule, and whole-image validation with member-weight choice."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bonemarrow.training.data import load_dataset
from bonemarrow.training.losses import SegmentationLoss, parse_class_weights, soft_dice_loss
from bonemarrow.training.models import Ensemble
from bonemarrow.training.trainer import TrainSettings, lr_at
from bonemarrow.training.validate import ENSEMBLE, validate, weight_grid
from tr_fixtures import CLASS_COLOURS


def test_soft_dice_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    target = torch.randint(0, 4, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(torch.full_like(perfect, 0.25), target).item() > 0.3


def test_logit_and_probability_losses_agree():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    loss = SegmentationLoss(class_weights=[1, 2, 1, 1])
    assert loss.from_logits(logits, target).item() == pytest.approx(
        loss.from_probs(torch.softmax(logits, 1), target).item(), rel=1e-4)


def test_class_weight_parsing():
    assert parse_class_weights(None) is None
    assert parse_class_weights("1,2,1,0.5") == [1.0, 2.0, 1.0, 0.5]
    auto = parse_class_weights("auto", [900, 10, 40, 50])
    assert auto[1] == max(auto) and auto[0] == min(auto) and sum(auto) == pytest.approx(4, abs=1e-3)
    with pytest.raises(ValueError, match="four|4"):
        parse_class_weights("1,2")


def test_lr_warms_up_then_decays_per_phase():
    settings = TrainSettings(steps=100, lr=1.0, warmup=0.1)
    joint = [lr_at(s, settings, 1) for s in range(100)]
    assert joint[0] < joint[9] == pytest.approx(1.0) and joint[-1] < 0.05
    assert all(a >= b for a, b in zip(joint[9:], joint[10:]))
    sequential = [lr_at(s, settings, 2) for s in range(100)]
    assert sequential[50] == sequential[0] and sequential[49] < 0.05


def test_weight_grid_covers_the_simplex():
    grid = weight_grid(2, 10)
    assert len(grid) == 11 and (1.0, 0.0) in grid and (0.0, 1.0) in grid and (0.5, 0.5) in grid
    assert all(math.isclose(sum(w), 1.0) for w in weight_grid(3, 4))


class _ColourClassifier(nn.Module):
    """A hand-made member: logits from the distance to each class colour (or a constant class)."""

    divisor = 16

    def __init__(self, constant: int | None = None):
        super().__init__()
        self.constant = constant
        self.register_buffer("colours", torch.tensor([CLASS_COLOURS[c] for c in range(4)], dtype=torch.float32))

    def forward(self, x):
        if self.constant is not None:
            logits = torch.full((x.shape[0], 4, *x.shape[2:]), -10.0)
            logits[:, self.constant] = 10.0
            return logits
        distance = ((x[:, None] - self.colours[None, :, :, None, None]) ** 2).sum(2)
        return -distance / 50.0


def test_validation_scores_members_and_picks_the_good_one(tiny_dataset):
    samples = load_dataset(tiny_dataset).split("val")
    model = Ensemble({"bad": _ColourClassifier(constant=3), "good": _ColourClassifier()},
                     mean=(0, 0, 0), std=(1, 1, 1))
    result = validate(model, samples, torch.device("cpu"), SegmentationLoss(), tile=64, batch_size=2)
    good, bad, ensemble = result.metrics["good"], result.metrics["bad"], result.metrics[ENSEMBLE]
    assert good["dice_bone"] > 0.9 and good["density_error"] < 0.05
    assert bad["dice_bone"] == 0.0 and bad["density_error"] == pytest.approx(1.0)
    assert result.weights[1] >= 0.5
    assert ensemble["mean_dice"] >= good["mean_dice"] - 1e-12
    assert ensemble["loss"] < bad["loss"]
    assert model.member_weights.tolist() == [0.5, 0.5]  # validate does not change the model
    assert np.isfinite(list(result.flat().values())).all()
