"""bm-train's settings, their defaults (the one place they are written) and its errors; no torch here.

The command line takes its defaults from TrainSettings, every checkpoint stores
asdict(settings), and a resumed run rebuilds them with `settings_from_saved`,
which checks the saved values like any other untrusted input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from bonemarrow.runtime.cli.common import EXIT_FAILED, EXIT_USAGE
from bonemarrow.training.augment import AUGMENTATIONS
from bonemarrow.training.models.registry import DEFAULT_PRESET, DEFAULT_TILE, PRESETS, check_tile, is_int, is_number

MODES = ("joint", "sequential")
DEVICES = ("auto", "cpu", "cuda")
#: Upper bounds for settings read from a checkpoint or given on the command line.
MAX_STEPS = 10_000_000
MAX_BATCH = 4096
CROP_RANGE = (16, 8192)


class TrainingError(ValueError):
    """A setting, dataset or run folder that cannot be used (one-line message); exit code 2."""

    exit_code = EXIT_USAGE


class TrainingDiverged(TrainingError):
    """Training ran but failed (the loss became NaN or infinite); exit code 1."""

    exit_code = EXIT_FAILED


@dataclass
class TrainSettings:
    """Everything that determines a run; saved in every checkpoint and compared on --resume.

    The defaults here are bm-train's defaults (its --help shows them from here).
    """

    preset: str = DEFAULT_PRESET
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05  # share of (each phase's) steps spent warming up
    val_every: int = 250
    val_tile: int = DEFAULT_TILE
    seed: int = 0
    mode: str = "joint"
    class_weights: str | None = None
    dice_weight: float = 1.0
    augment: str = "robust"  # a preset of training.augment.AUGMENTATIONS
    backbone_weights: str | None = None

    def check(self) -> None:
        """Types and bounds of every value (they may come from a checkpoint file)."""
        if isinstance(self.augment, bool):  # runs saved before presets: on meant today's `basic`
            self.augment = "basic" if self.augment else "none"
        if not isinstance(self.augment, str) or self.augment not in AUGMENTATIONS:
            raise TrainingError(f"--augment must be one of {sorted(AUGMENTATIONS)}, got {self.augment!r}")
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise TrainingError(f"--preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if not isinstance(self.model_overrides, dict):
            raise TrainingError(f"model overrides must be a dictionary, got {type(self.model_overrides).__name__}")
        if self.mode not in MODES:
            raise TrainingError(f"--mode must be one of {list(MODES)}, got {self.mode!r}")
        for name, value, low, high in (("steps", self.steps, 1, MAX_STEPS), ("val-every", self.val_every, 1, MAX_STEPS),
                                       ("batch-size", self.batch_size, 2, MAX_BATCH),
                                       ("crop", self.crop, *CROP_RANGE)):
            if name == "batch-size" and is_int(value) and value < 2:
                raise TrainingError("--batch-size must be at least 2 (batch norm after DeepLab's image pooling "
                                    "needs 2)")
            if not is_int(value) or not low <= value <= high:
                raise TrainingError(f"--{name} must be an integer from {low} to {high}, got {value!r}")
        try:
            check_tile(self.val_tile, "--val-tile")
        except ValueError as error:
            raise TrainingError(str(error)) from None
        if not is_int(self.seed):
            raise TrainingError(f"--seed must be an integer, got {self.seed!r}")
        for name, value in (("lr", self.lr), ("weight-decay", self.weight_decay), ("dice weight", self.dice_weight),
                            ("warm-up share", self.warmup)):
            if not is_number(value) or value < 0:
                raise TrainingError(f"--{name} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise TrainingError("--lr must be positive")
        if self.warmup > 1:
            raise TrainingError(f"the warm-up share must be at most 1, got {self.warmup!r}")
        for name, value in (("class-weights", self.class_weights), ("backbone-weights", self.backbone_weights)):
            if value is not None and not isinstance(value, str):
                raise TrainingError(f"--{name} must be text, got {value!r}")
        if self.class_weights and self.class_weights.strip().lower() != "auto":
            parts = self.class_weights.split(",")
            try:
                values = [float(part) for part in parts]
            except ValueError:
                values = []
            if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
                raise TrainingError(f"class weights must be 'auto' or 4 comma-separated numbers >= 0, "
                                    f"got {self.class_weights!r}")


def settings_from_saved(saved: Any, where: str) -> TrainSettings:
    """TrainSettings from a checkpoint's `settings` entry: known keys only, every value checked."""
    if not isinstance(saved, dict):
        raise TrainingError(f"{where}: its settings are not a dictionary")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(str(key) for key in set(saved) - known)
    if unknown:
        raise TrainingError(f"{where}: unknown setting(s) {unknown[:5]} (written by another version?)")
    settings = TrainSettings(**saved)
    try:
        settings.check()
    except TrainingError as error:
        raise TrainingError(f"{where}: saved settings: {error}") from None
    return settings


#: Settings that may differ between a run and its resumption without changing the result.
RESUMABLE_CHANGES = frozenset({"val_every", "val_tile"})

DEFAULTS = TrainSettings()

__all__ = ["DEFAULTS", "DEVICES", "MODES", "RESUMABLE_CHANGES", "TrainSettings", "TrainingDiverged", "TrainingError",
           "settings_from_saved"]
