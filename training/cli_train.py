"""bm-train: train the U-Net + DeepLabv3 ensemble on a dataset folder.

Writes RUN_DIR/last.pt (resumable), best_density.pt (lowest mean relative bone
density error on validation, the original project's criterion), best_loss.pt,
metrics.csv and curves.png.

Nothing here imports torch at module level: `bm-train --help` answers at once,
and a missing `train` extra is reported in one line before anything starts.
Every default comes from TrainSettings (bonemarrow.training.settings).
"""
from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from bonemarrow.runtime.cli.common import (CONTEXT_SETTINGS, EXIT_USAGE, choice, fail, first_line, quiet_option,
                                           require, threads_option)
from bonemarrow.training.augment import AUGMENTATIONS
from bonemarrow.training.models.registry import BACKBONE_NAMES, MEMBER_KINDS, PRESETS, TILE_RANGE, UNET_FEATURES_RANGE
from bonemarrow.training.settings import DEFAULTS, DEVICES, MODES, TrainSettings

EXIT_INTERRUPTED = 130

HELP = """Train the ensemble on DATASET (images/, labels/, manifest.json) into RUN_DIR.

\b
Exit codes: 0 done; 1 training failed (the loss diverged); 2 usage error or
unusable dataset, settings or checkpoint (including a missing `train` extra);
130 interrupted (last.pt holds the state: continue with --resume).
"""

#: Command-line options that map one to one onto TrainSettings fields.
SETTING_OPTIONS = ("preset", "steps", "batch_size", "crop", "lr", "weight_decay", "val_every", "val_tile", "seed",
                   "mode", "class_weights", "augment")


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoints, metrics.csv, curves.png).")
@click.option("--preset", type=choice(sorted(PRESETS)), default=DEFAULTS.preset, show_default=True,
              help="Model preset (seed = the original U-Net 32 + DeepLabv3-ResNet101).")
@click.option("--unet-features", type=click.IntRange(*UNET_FEATURES_RANGE), default=None, help="Override the U-Net's init_features.")
@click.option("--backbone", type=choice(BACKBONE_NAMES), default=None, help="Override the DeepLabv3 backbone.")
@click.option("--members", default=None, help=f"Comma-separated subset of {','.join(MEMBER_KINDS)} to train [all].")
@click.option("--steps", type=int, default=DEFAULTS.steps, show_default=True, help="Optimizer steps in total.")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True, help="Crops per step (at least 2).")
@click.option("--crop", type=int, default=DEFAULTS.crop, show_default=True, help="Training crop side in pixels, a multiple of 32.")
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True, help="Peak learning rate of AdamW.")
@click.option("--weight-decay", type=float, default=DEFAULTS.weight_decay, show_default=True, help="AdamW weight decay.")
@click.option("--val-every", type=int, default=DEFAULTS.val_every, show_default=True, help="Validate every N steps.")
@click.option("--val-tile", type=click.IntRange(*TILE_RANGE), default=DEFAULTS.val_tile, show_default=True,
              help="Tile side for whole-image validation (recorded in checkpoints as the model's tile).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Random seed; the same seed gives the same run.")
@click.option("--mode", type=choice(MODES), default=DEFAULTS.mode, show_default=True, help="Train both members together or one after the other.")
@click.option("--class-weights", default=DEFAULTS.class_weights, help="Cross-entropy class weights: 'auto' or four numbers 'bg,bone,fat,other'.")
@click.option("--augment", type=choice(AUGMENTATIONS), default=DEFAULTS.augment, show_default=True,
              help="Augmentation preset (robust: strong stain, hue, scale, blur and JPEG changes; "
                   "basic: the first release's mild ones; none: for debugging).")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, exists=True), default=None, help="Local backbone state dict for DeepLabv3 (nothing is downloaded).")
@click.option("--device", type=choice(DEVICES), default="auto", show_default=True)
@click.option("--no-amp", is_flag=True, help="Full precision on CUDA too.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR exactly where last.pt stopped (its settings are kept).")
@click.option("--stop-after", type=int, default=None, help="Stop after this step (state kept in last.pt for --resume).")
@threads_option(help="CPU threads for PyTorch [default: PyTorch's choice].")
@quiet_option(help="No progress bars or per-validation lines.")
@click.pass_context
def main(ctx, dataset, run_dir, preset, unet_features, backbone, members, steps, batch_size, crop, lr, weight_decay,
         val_every, val_tile, seed, mode, class_weights, augment, backbone_weights, device, no_amp, resume,
         stop_after, threads, quiet):
    for module in ("torch", "torchvision", "matplotlib"):
        require(module, "train", "bm-train")
    import torch

    from bonemarrow.training.checkpoint import CheckpointError
    from bonemarrow.training.data import DatasetError
    from bonemarrow.training.models import BackboneWeightsError
    from bonemarrow.training.trainer import Trainer, TrainingError

    if threads:
        torch.set_num_threads(threads)
    values = {"preset": preset, "steps": steps, "batch_size": batch_size, "crop": crop, "lr": lr,
              "weight_decay": weight_decay, "val_every": val_every, "val_tile": val_tile, "seed": seed, "mode": mode,
              "class_weights": class_weights, "augment": augment}
    # On --resume only the options really typed may differ from (or replace) the run's saved settings.
    given = {key for key in SETTING_OPTIONS if ctx.get_parameter_source(key) != ParameterSource.DEFAULT}
    overrides = {}
    if unet_features is not None:
        overrides["unet_features"] = unet_features
    if backbone is not None:
        overrides["deeplab_backbone"] = backbone
    if members:
        overrides["members"] = [m.strip() for m in members.split(",") if m.strip()]
    if overrides:
        given.add("model_overrides")
    settings = TrainSettings(**values, model_overrides=overrides, backbone_weights=backbone_weights)
    trainer = None
    try:
        trainer = Trainer(dataset, run_dir, settings, device=device, amp=not no_amp, resume=resume, quiet=quiet,
                          stop_after=stop_after, given=frozenset(given))
        row = trainer.run()
    except (DatasetError, CheckpointError, BackboneWeightsError, TrainingError) as error:
        # TrainingDiverged (a TrainingError) carries exit code 1; every other one is unusable input (2).
        fail(first_line(error, limit=2000), getattr(error, "exit_code", EXIT_USAGE))  # our own one-line messages
    except ValueError as error:  # e.g. an impossible model override (registry.ConfigError)
        fail(first_line(error), EXIT_USAGE)
    except KeyboardInterrupt:
        where = f" at step {trainer.step}; continue with --resume" if trainer is not None else " before training started"
        fail(f"interrupted{where}", EXIT_INTERRUPTED)
    if not quiet and row is not None:
        click.echo(f"done: step {trainer.step}, checkpoints in {run_dir}")
    sys.exit(0)


if __name__ == "__main__":
    main()
