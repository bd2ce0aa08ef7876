"""A contact sheet of hold-out images: downscaled scans beside their labels, and one 1:1 crop.

    python -m bonemarrow.benchmarks.holdout_synth.sheet docs/holdout_synth_sheet.png

The sheet is how a person judges whether the generator looks like real H&E
marrow; the 1:1 crop shows the cells at the scale the model sees them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import cv2
import numpy as np

from bonemarrow.runtime.atomic import write_bytes_atomic
from bonemarrow.runtime.labels import colorize

from .generator import generate_scene

DEFAULT_SEEDS = (48, 35, 11, 4, 32)
GAP = 6


def _caption(tile: np.ndarray, text: str) -> None:
    cv2.putText(tile, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


def _pair(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    gap = np.full((left.shape[0], GAP, 3), 255, np.uint8)
    return np.hstack([left, gap, right])


def make_sheet(seeds: tuple[int, ...] = DEFAULT_SEEDS, size: tuple[int, int] = (3000, 1000), thumb_width: int = 600,
               crop: tuple[int, int] = (600, 300), crop_seed: int | None = None) -> np.ndarray:
    """The sheet as an RGB array: one row per seed, then a 1:1 crop of `crop_seed` (default: the first seed)."""
    width, height = size
    rows = []
    crop_seed = seeds[0] if crop_seed is None else crop_seed
    crop_pair = None
    for seed in seeds:
        scene = generate_scene(seed, width, height)
        thumb_h = max(int(round(thumb_width * height / width)), 1)
        image = cv2.resize(scene.rgb, (thumb_width, thumb_h), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(colorize(scene.labels), (thumb_width, thumb_h), interpolation=cv2.INTER_NEAREST)
        q = scene.params
        _caption(image, f"seed {seed}  scale {q['scale']:.2f}  cellularity {q['cellularity']:.2f}")
        density = q["fractions"]["bone_density"]
        _caption(labels, f"bone {100 * density:.0f}%  fat {100 * q['fractions']['fat_fraction']:.0f}%"
                 if density is not None else "no tissue")
        rows.append(_pair(image, labels))
        if seed == crop_seed:
            cw, ch = min(crop[0], width), min(crop[1], height)
            # The crop is centred on the tissue's centre of mass.
            ys, xs = np.nonzero(scene.masks["tissue"])
            cx = int(xs.mean()) if len(xs) else width // 2
            cy = int(ys.mean()) if len(ys) else height // 2
            x0 = int(np.clip(cx - cw // 2, 0, width - cw))
            y0 = int(np.clip(cy - ch // 2, 0, height - ch))
            image_crop = scene.rgb[y0:y0 + ch, x0:x0 + cw].copy()
            _caption(image_crop, f"seed {seed}, 1:1 crop")
            crop_pair = _pair(image_crop, colorize(scene.labels[y0:y0 + ch, x0:x0 + cw]))
    if crop_pair is not None:
        rows.append(crop_pair)
    full_width = max(row.shape[1] for row in rows)
    padded = []
    for row in rows:
        if row.shape[1] < full_width:
            row = np.hstack([row, np.full((row.shape[0], full_width - row.shape[1], 3), 255, np.uint8)])
        padded.extend([row, np.full((GAP, full_width, 3), 255, np.uint8)])
    return np.vstack(padded[:-1])


def write_sheet(path: str | Path, **kwargs) -> Path:
    """Write the contact sheet as a PNG (atomically) and return its path."""
    sheet = make_sheet(**kwargs)
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError("could not encode the contact sheet")
    write_bytes_atomic(path, data.tobytes())
    return Path(path)


@click.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--seeds", default=",".join(str(s) for s in DEFAULT_SEEDS), show_default=True,
              help="Comma-separated seeds, one row each.")
@click.option("--size", default="3000x1000", show_default=True, help="Generated image size WxH.")
def main(out: str, seeds: str, size: str) -> None:
    """Write a contact sheet of hold-out images to OUT (PNG)."""
    width, height = (int(v) for v in size.lower().split("x"))
    path = write_sheet(out, seeds=tuple(int(s) for s in seeds.split(",")), size=(width, height))
    click.echo(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
