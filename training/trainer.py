"""The training loop: both ensemble members, periodic whole-image validation, checkpoints.

Reproducibility is built on one rule: everything random at step s (the crops,
their augmentation, dropout) is seeded from (seed, s) alone, and the learning
rate is a pure function of s. A run resumed from last.pt at step s therefore
continues bit-for-bit like the uninterrupted run (on CPU; some CUDA kernels
are not deterministic).

Modes:
  joint      every step trains both members on their own loss plus the loss of
             their equal-weight average (the ensemble output), so each member
             also learns to correct the other's errors;
  sequential the first half of the steps trains the first member, the second
             half the second, each with its own warm-up and cosine decay.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bonemarrow.runtime.atomic import write_text_atomic
from bonemarrow.training.augment import augmentation
from bonemarrow.training.checkpoint import CheckpointError, model_from_payload, read_checkpoint, save_checkpoint
from bonemarrow.training.data import CropSampler, DatasetError, check_crop_fits, describe, load_dataset
from bonemarrow.training.losses import SegmentationLoss, parse_class_weights
from bonemarrow.training.models import build_model, load_backbone_weights
from bonemarrow.training.plots import plot_curves
from bonemarrow.training.settings import (MODES, RESUMABLE_CHANGES, TrainingDiverged, TrainingError, TrainSettings,
                                          settings_from_saved)
from bonemarrow.training.validate import ENSEMBLE, validate

LAST, BEST_DENSITY, BEST_LOSS = "last.pt", "best_density.pt", "best_loss.pt"
METRICS_CSV, CURVES_PNG = "metrics.csv", "curves.png"


def lr_at(step: int, settings: TrainSettings, phases: int) -> float:
    """Linear warm-up then cosine decay to 1% of the peak, restarted per phase."""
    phase_length = math.ceil(settings.steps / phases)
    position = step % phase_length
    warmup = max(1, int(settings.warmup * phase_length))
    if position < warmup:
        return settings.lr * (position + 1) / warmup
    progress = (position - warmup) / max(1, phase_length - warmup)
    return settings.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def step_seed(seed: int, step: int) -> int:
    return int(np.random.default_rng([seed, step, 0x70C4]).integers(2**62))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but PyTorch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and batch-norm parameters (decaying them only hurts)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.ndim > 1 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    columns: list[str] = []
    for row in history:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in history:
        writer.writerow({key: _format_cell(row.get(key, "")) for key in columns})
    write_text_atomic(path, buffer.getvalue())


class Trainer:
    """Set up from settings (or from RUN_DIR/last.pt with resume=True) and run()."""

    def __init__(self, dataset: str | os.PathLike, run_dir: str | os.PathLike, settings: TrainSettings, *,
                 device: str = "auto", amp: bool = True, resume: bool = False, quiet: bool = False,
                 stop_after: int | None = None, given: frozenset[str] = frozenset()) -> None:
        self.run_dir = Path(run_dir)
        self.quiet = quiet
        self.stop_after = stop_after
        self.device = resolve_device(device)
        self.amp_dtype = amp_dtype_for(self.device, amp)
        payload = None
        if resume:
            payload = self._read_resume(settings, given)
            saved = settings_from_saved(payload["settings"], str(self.run_dir / LAST))
            settings = replace(saved, **{k: getattr(settings, k) for k in RESUMABLE_CHANGES & given})
        elif (self.run_dir / LAST).exists():
            raise TrainingError(f"{self.run_dir}: already holds a run; pass --resume to continue it or choose a new folder")
        settings.check()
        self.settings = settings
        self.dataset = load_dataset(dataset, seed=settings.seed)
        check_crop_fits(self.dataset, settings.crop)
        if payload is not None and payload["config"].get("dataset_sha256") != self.dataset.manifest_sha256:
            raise TrainingError(f"{self.dataset.root}: its manifest differs from the one {self.run_dir / LAST} was trained on")
        if payload is None:
            torch.manual_seed(settings.seed)  # the initial weights are part of the run's determinism
            self.model = build_model(settings.preset, **settings.model_overrides)
            if settings.backbone_weights:
                if "deeplabv3" not in self.model.members:
                    raise TrainingError("--backbone-weights needs the deeplabv3 member")
                load_backbone_weights(self.model.members["deeplabv3"], settings.backbone_weights)
        else:
            self.model = model_from_payload(payload, self.run_dir / LAST)
        if settings.crop % self.model.divisor:
            raise TrainingError(f"--crop must be a multiple of the model's divisor {self.model.divisor}, got {settings.crop}")
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, settings.weight_decay), lr=settings.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss = SegmentationLoss(
            parse_class_weights(settings.class_weights, self.dataset.class_pixel_counts("train")), settings.dice_weight
        )
        self.sampler = CropSampler(self.dataset.split("train"), settings.crop, settings.seed,
                                   augmentation(settings.augment))
        self.step = 0
        self.history: list[dict] = []
        self.best = {"density_error": math.inf, "val_loss": math.inf}
        self.loss_sum, self.loss_count = 0.0, 0
        # Running sums of each loss part (each member's and the ensemble's) since the last validation,
        # so curves.png can set every validation loss beside the same quantity in training.
        self.loss_parts: dict[str, list[float]] = {}
        if payload is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
            if payload.get("scaler"):
                self.scaler.load_state_dict(payload["scaler"])
            self.step = int(payload["step"])
            self.history = [dict(row) for row in payload.get("history", [])]
            self.best = dict(payload.get("best", self.best))
            self.loss_sum, self.loss_count = float(payload.get("loss_sum", 0.0)), int(payload.get("loss_count", 0))
            self.loss_parts = {str(k): [float(v[0]), float(v[1])] for k, v in dict(payload.get("loss_parts", {})).items()}

    # ------------------------------------------------------------------ setup
    def _read_resume(self, settings: TrainSettings, given: frozenset[str]) -> dict:
        path = self.run_dir / LAST
        if not path.exists():
            raise TrainingError(f"{path}: nothing to resume (no last.pt in the run folder)")
        payload = read_checkpoint(path)
        saved = payload.get("settings")
        if not isinstance(saved, dict) or "step" not in payload:
            raise CheckpointError(f"{path}: not a training checkpoint (no settings/step to resume from)")
        for key in sorted(given - RESUMABLE_CHANGES):
            if key in saved and saved[key] != getattr(settings, key):
                raise TrainingError(
                    f"{key.replace('_', '-')} {getattr(settings, key)!r} differs from the run's {saved[key]!r}; "
                    "a resumed run keeps its settings"
                )
        return payload

    # --------------------------------------------------------------- training
    def _phase_member(self) -> str | None:
        """The member trained at this step in sequential mode (None in joint mode)."""
        if self.settings.mode == "joint":
            return None
        names = self.model.member_names
        phase_length = math.ceil(self.settings.steps / len(names))
        return names[min(self.step // phase_length, len(names) - 1)]

    def train_step(self) -> dict[str, float]:
        settings = self.settings
        phases = 1 if settings.mode == "joint" else len(self.model.member_names)
        lr = lr_at(self.step, settings, phases)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(step_seed(settings.seed, self.step))
        images, labels = self.sampler.batch(self.step, settings.batch_size)
        images = torch.from_numpy(images).to(self.device, non_blocking=True)
        labels = torch.from_numpy(labels).to(self.device, non_blocking=True)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        parts: dict[str, torch.Tensor] = {}
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            member = self._phase_member()
            if member is None:
                logits = self.model.member_logits(images)
                for name, value in logits.items():
                    parts[name] = self.loss.from_logits(value, labels)
                average = sum(torch.softmax(v.float(), dim=1) for v in logits.values()) / len(logits)
                parts[ENSEMBLE] = self.loss.from_probs(average, labels)
            else:
                parts[member] = self.loss.from_logits(self.model.members[member](self.model.preprocess(images)), labels)
        total = sum(parts.values())
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        value = float(total.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value} at step {self.step}; lower --lr")
        self.loss_sum += value
        self.loss_count += 1
        part_values = {k: float(v.detach()) for k, v in parts.items()}
        for name, part in part_values.items():
            total_count = self.loss_parts.setdefault(name, [0.0, 0.0])
            total_count[0] += part
            total_count[1] += 1
        return {"loss": value, "lr": lr, **part_values}

    # ------------------------------------------------------------- validation
    def run_validation(self) -> dict[str, Any]:
        samples = self.dataset.split("val")
        bar = tqdm(total=len(samples), desc="validate", leave=False, disable=self.quiet)
        result = validate(self.model, samples, self.device, self.loss, tile=self.settings.val_tile,
                          batch_size=max(1, self.settings.batch_size // 2), amp_dtype=self.amp_dtype,
                          progress=bar.update)
        bar.close()
        self.model.set_member_weights(result.weights)
        row = {
            "step": self.step,
            "lr": lr_at(max(0, self.step - 1), self.settings, 1 if self.settings.mode == "joint" else len(self.model.member_names)),
            # The optimised total (the sum of the parts below), and each part on its own: a member's or
            # the ensemble's training loss is the same quantity as its validation loss `WHO/loss`.
            "train_loss": self.loss_sum / self.loss_count if self.loss_count else math.nan,
            **{f"{name}/train_loss": total / count for name, (total, count) in self.loss_parts.items() if count},
            **{f"weight_{name}": w for name, w in zip(self.model.member_names, result.weights)},
            **result.flat(),
        }
        self.loss_sum, self.loss_count = 0.0, 0
        self.loss_parts = {}
        return row

    # ------------------------------------------------------------ persistence
    def _config(self, row: dict | None) -> dict[str, Any]:
        return {
            "dataset_sha256": self.dataset.manifest_sha256,
            "dataset": str(self.dataset.root),
            "step": self.step,
            "mode": self.settings.mode,
            "tile": self.settings.val_tile,  # the tile validation ran with: the default for export and bm-run
            "val_metrics": {k: v for k, v in (row or {}).items() if isinstance(v, (int, float))},
        }

    def save(self, name: str, row: dict | None, with_state: bool) -> None:
        extra: dict[str, Any] = {"settings": asdict(self.settings), "step": self.step}
        if with_state:
            extra.update(
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
                history=self.history,
                best=self.best,
                loss_sum=self.loss_sum,
                loss_count=self.loss_count,
                loss_parts={name: list(values) for name, values in self.loss_parts.items()},
            )
        save_checkpoint(self.run_dir / name, self.model, self._config(row), **extra)

    def record(self, row: dict) -> list[str]:
        """Append a validation row, keep the best checkpoints, rewrite metrics.csv and the curves."""
        self.history = [r for r in self.history if r["step"] < row["step"]] + [row]
        improved = []
        error = row.get(f"{ENSEMBLE}/density_error", math.nan)
        if not math.isnan(error) and error < self.best["density_error"]:
            self.best["density_error"] = error
            self.save(BEST_DENSITY, row, with_state=False)
            improved.append("density")
        val_loss = row.get(f"{ENSEMBLE}/loss", math.nan)
        if not math.isnan(val_loss) and val_loss < self.best["val_loss"]:
            self.best["val_loss"] = val_loss
            self.save(BEST_LOSS, row, with_state=False)
            improved.append("loss")
        self.save(LAST, row, with_state=True)
        write_metrics_csv(self.run_dir / METRICS_CSV, self.history)
        plot_curves(self.history, self.run_dir / CURVES_PNG, self.model.member_names)
        return improved

    # -------------------------------------------------------------------- run
    def run(self) -> dict[str, Any] | None:
        """Train to settings.steps (or stop_after); returns the last validation row."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        end = settings.steps if self.stop_after is None else min(settings.steps, self.stop_after)
        if not self.quiet:
            tqdm.write(describe(self.dataset))
            tqdm.write(f"device {self.device}, AMP {self.amp_dtype}, preset {settings.preset}, mode {settings.mode}, "
                       f"members {', '.join(self.model.member_names)}, steps {self.step}->{end} of {settings.steps}")
        last_row = self.history[-1] if self.history else None
        bar = tqdm(total=end, initial=self.step, desc="train", disable=self.quiet, dynamic_ncols=True)
        try:
            while self.step < end:
                info = self.train_step()
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.3f}", lr=f"{info['lr']:.2e}")
                if self.step % settings.val_every == 0 or self.step == settings.steps:
                    last_row = self.run_validation()
                    improved = self.record(last_row)
                    if not self.quiet:
                        tqdm.write(self._summary_line(last_row, improved))
        except KeyboardInterrupt:
            bar.close()
            self.save(LAST, None, with_state=True)
            raise
        bar.close()
        if self.step == end and (not self.history or self.history[-1]["step"] != self.step):
            self.save(LAST, None, with_state=True)  # stopped between validations: keep the state to resume
        return last_row

    def _summary_line(self, row: dict, improved: list[str]) -> str:
        parts = [f"step {row['step']}"]
        for who in [*self.model.member_names, ENSEMBLE]:
            parts.append(f"{who}: dice bone {row.get(f'{who}/dice_bone', math.nan):.3f} "
                         f"mean {row.get(f'{who}/mean_dice', math.nan):.3f} "
                         f"density err {percent(row.get(f'{who}/density_error', math.nan))}")
        weights = ", ".join(f"{n}={row[f'weight_{n}']:.1f}" for n in self.model.member_names)
        return " | ".join(parts) + f" | weights {weights}" + (f" | best {'+'.join(improved)}" if improved else "")


def percent(value: float | None) -> str:
    """A ratio as users read it everywhere (bm-eval too): 0.084 -> '8.4%'; NaN/None -> 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%"


__all__ = ["DatasetError", "MODES", "RESUMABLE_CHANGES", "Trainer", "TrainSettings", "TrainingDiverged", "TrainingError", "lr_at", "percent"]
