"""One annotation PSD -> (scan RGB, label map): the converter bm-prepare runs per file.

Labels: background everywhere, then other tissue where the tissue silhouette
covers, then the overlap loser, then the overlap winner (fat by default) where
their layers cover. So other = tissue - bone - fat, and a bone or fat stroke
that strays past the silhouette still counts as bone or fat.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bonemarrow.runtime.errors import first_line
from bonemarrow.runtime.labels import BONE, FAT, OTHER
from bonemarrow.training.psd.layers import coverage, pixel_layers, scan_rgb
from bonemarrow.training.psd.roles import RoleError, assign_roles


class ConversionError(ValueError):
    """This PSD cannot be converted; the message is the one-line reason."""


@dataclass
class Conversion:
    rgb: np.ndarray
    labels: np.ndarray
    roles: dict = field(default_factory=dict)      # role -> {"index", "name", "found_by"}
    overlap_pixels: int = 0                       # pixels both the bone and the fat layer cover


def open_psd(path: str | os.PathLike):
    from psd_tools import PSDImage

    try:
        return PSDImage.open(path)
    except Exception as error:  # psd-tools raises many kinds on damaged files
        raise ConversionError(f"not a readable PSD ({first_line(error, with_type=True)})") from None


def convert_psd(path: str | os.PathLike, overrides: dict[str, str] | None = None, overlap_winner: str = "fat",
                allow_empty: tuple[str, ...] = ("bone",)) -> Conversion:
    """Convert one PSD; raises ConversionError with a one-line reason."""
    if overlap_winner not in ("fat", "bone"):
        raise ValueError(f"overlap_winner must be 'fat' or 'bone', not {overlap_winner!r}")
    psd = open_psd(Path(path))
    size = (int(psd.width), int(psd.height))
    try:
        layers = pixel_layers(psd)
    except Exception as error:
        raise ConversionError(f"cannot list layers ({first_line(error, with_type=True)})") from None
    cache: dict[int, np.ndarray] = {}

    def covered(info) -> np.ndarray:
        if info.index not in cache:
            try:
                cache[info.index] = coverage(info, size)
            except Exception as error:
                raise ConversionError(f"layer #{info.index} {info.name!r} cannot be decoded "
                                      f"({first_line(error, with_type=True)})") from None
        return cache[info.index]

    try:
        roles = assign_roles(layers, overrides, area=lambda info: int(covered(info).sum()))
    except RoleError as error:
        raise ConversionError(str(error)) from None
    scan, _ = roles["scan"]
    if scan.bbox != (0, 0, size[0], size[1]):
        left, top, right, bottom = scan.bbox
        raise ConversionError(f"scan layer {scan.name!r} is {right - left}x{bottom - top} at ({left}, {top}) "
                              f"but the canvas is {size[0]}x{size[1]}")
    masks = {}
    for role in ("tissue", "bone", "fat"):
        info, _ = roles[role]
        masks[role] = covered(info)
        if not masks[role].any() and role not in allow_empty:
            what = "mask" if info.has_mask else "alpha"
            raise ConversionError(f"{role} layer #{info.index} {info.name!r} is empty (no {what} >= 128)")
    try:
        rgb = scan_rgb(scan, size)
    except Exception as error:
        raise ConversionError(f"scan layer {scan.name!r} cannot be decoded ({first_line(error, with_type=True)})") \
            from None
    labels = np.zeros((size[1], size[0]), np.uint8)
    labels[masks["tissue"]] = OTHER
    order = ("bone", "fat") if overlap_winner == "fat" else ("fat", "bone")
    for role in order:
        labels[masks[role]] = BONE if role == "bone" else FAT
    return Conversion(
        rgb=rgb, labels=labels,
        roles={role: {"index": info.index, "name": info.name, "found_by": how} for role, (info, how) in roles.items()},
        overlap_pixels=int((masks["bone"] & masks["fat"]).sum()),
    )
