"""bm-train: train the U-Net + DeepLabv3 ensemble on a dataset folder.

Writes RUN_DIR/last.pt (resumable), best_density.pt (lowest mean relative bone
density error on validation, the original project's criterion), best_loss.pt,
metrics.csv and curves.png. Exit codes: 0 done, 1 training failed (e.g. the
loss diverged), 2 unusable input (dataset, settings, checkpoint), 130 interrupted
(last.pt holds the state; continue with --resume).
"""
from __future__ import annotations

import sys

import click

from bonemarrow.training.augment import AUGMENTATIONS
from bonemarrow.training.models import BACKBONES, PRESETS

_SETTING_DEFAULTS = {
    "preset": "compact", "steps": 2000, "batch_size": 8, "crop": 256, "lr": 1e-3, "weight_decay": 1e-4,
    "val_every": 250, "val_tile": 512, "seed": 0, "mode": "joint", "class_weights": None,
}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoints, metrics.csv, curves.png).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="Model preset (default compact; seed = the original U-Net 32 + DeepLabv3-ResNet101).")
@click.option("--unet-features", type=int, default=None, help="Override the U-Net's init_features.")
@click.option("--backbone", type=click.Choice(sorted(BACKBONES)), default=None, help="Override the DeepLabv3 backbone.")
@click.option("--members", default=None, help="Comma-separated subset of unet,deeplabv3 to train (default both).")
@click.option("--steps", type=int, default=None, help="Optimizer steps in total (default 2000).")
@click.option("--batch-size", type=int, default=None, help="Crops per step (default 8, at least 2).")
@click.option("--crop", type=int, default=None, help="Training crop side in pixels, a multiple of 32 (default 256).")
@click.option("--lr", type=float, default=None, help="Peak learning rate of AdamW (default 1e-3).")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay (default 1e-4).")
@click.option("--val-every", type=int, default=None, help="Validate every N steps (default 250).")
@click.option("--val-tile", type=int, default=None, help="Tile side for whole-image validation (default 512).")
@click.option("--seed", type=int, default=None, help="Random seed; the same seed gives the same run (default 0).")
@click.option("--mode", type=click.Choice(["joint", "sequential"]), default=None, help="Train both members together (default) or one after the other.")
@click.option("--class-weights", default=None, help="Cross-entropy class weights: 'auto' or four numbers 'bg,bone,fat,other'.")
@click.option("--augment", type=click.Choice(list(AUGMENTATIONS)), default=None,
              help="Augmentation preset (default robust: strong stain, hue, scale, blur and JPEG changes; "
                   "basic: the first release's mild ones; none: for debugging).")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, exists=True), default=None, help="Local backbone state dict for DeepLabv3 (nothing is downloaded).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--no-amp", is_flag=True, help="Full precision on CUDA too.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR exactly where last.pt stopped.")
@click.option("--stop-after", type=int, default=None, help="Stop after this step (state kept in last.pt for --resume).")
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's choice).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or per-validation lines.")
def main(dataset, run_dir, preset, unet_features, backbone, members, steps, batch_size, crop, lr, weight_decay,
         val_every, val_tile, seed, mode, class_weights, augment, backbone_weights, device, no_amp, resume,
         stop_after, threads, quiet):
    """Train the ensemble on DATASET (images/, labels/, manifest.json) into RUN_DIR."""
    import torch

    from bonemarrow.training.checkpoint import CheckpointError
    from bonemarrow.training.data import DatasetError
    from bonemarrow.training.models import BackboneWeightsError
    from bonemarrow.training.trainer import Trainer, TrainingError, TrainSettings

    if threads:
        torch.set_num_threads(threads)
    given_values = {
        "preset": preset, "steps": steps, "batch_size": batch_size, "crop": crop, "lr": lr,
        "weight_decay": weight_decay, "val_every": val_every, "val_tile": val_tile, "seed": seed, "mode": mode,
        "class_weights": class_weights,
    }
    overrides = {}
    if unet_features is not None:
        overrides["unet_features"] = unet_features
    if backbone is not None:
        overrides["deeplab_backbone"] = backbone
    if members:
        overrides["members"] = [m.strip() for m in members.split(",") if m.strip()]
    given = {key for key, value in given_values.items() if value is not None}
    if overrides:
        given.add("model_overrides")
    if augment is not None:
        given.add("augment")
    settings = TrainSettings(
        **{key: (value if value is not None else _SETTING_DEFAULTS[key]) for key, value in given_values.items()},
        model_overrides=overrides, augment=augment or "robust", backbone_weights=backbone_weights,
    )
    trainer = None
    try:
        trainer = Trainer(dataset, run_dir, settings, device=device, amp=not no_amp, resume=resume, quiet=quiet,
                          stop_after=stop_after, given=frozenset(given))
        row = trainer.run()
    except (DatasetError, CheckpointError, BackboneWeightsError) as error:
        click.echo(f"bm-train: {error}", err=True)
        sys.exit(2)
    except TrainingError as error:
        click.echo(f"bm-train: {error}", err=True)
        sys.exit(1 if "loss became" in str(error) else 2)
    except ValueError as error:  # e.g. an impossible model override
        click.echo(f"bm-train: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        where = f" at step {trainer.step}; continue with --resume" if trainer is not None else " before training started"
        click.echo(f"bm-train: interrupted{where}", err=True)
        sys.exit(130)
    if not quiet and row is not None:
        click.echo(f"done: step {trainer.step}, checkpoints in {run_dir}")


if __name__ == "__main__":
    main()
