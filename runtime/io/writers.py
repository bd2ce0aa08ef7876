"""Output writers: each makes one kind of file per image from the bands the tiler produces.

A writer opens an ImageOutput for one image; the tiler feeds it bands (it is a
BandSink), and `commit()` writes the file atomically, so nothing appears under
the final name until the output is complete. bm-run's per-image work
(batch/process.py) takes a list of writers: a new output format is a new writer.

The two writers here build PNGs of ordinary scans. They keep the label map of
the image (one byte per pixel) and encode at commit(), so the encoding runs in
bm-run's writer thread, overlapping the next image's inference.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from bonemarrow.runtime.atomic import write_bytes_atomic
from bonemarrow.runtime.io.labels import write_label_png
from bonemarrow.runtime.overlay import overlay
from bonemarrow.runtime.tiling.sinks import BandSink
from bonemarrow.runtime.tiling.sources import ImageSource


@runtime_checkable
class ImageOutput(BandSink, Protocol):
    """One output file of one image: receives bands like any BandSink, then is committed."""

    def commit(self) -> None:
        """Write the finished file under its final name (atomically); OSError if it cannot."""
        ...


@runtime_checkable
class OutputWriter(Protocol):
    """A kind of output file: where it goes for an image NAME, and how it is built."""

    key: str  # the results record's field that names the file, e.g. "labels"

    def filename(self, name: str) -> str:
        """The file's name for image NAME, e.g. NAME_labels.png."""
        ...

    def open(self, path: Path, source: ImageSource) -> ImageOutput:
        """Start the output for one image read from `source`, to be written to `path`."""
        ...


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray, compression: int = 3) -> None:
    """Write an RGB image as PNG atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())


class _LabelMapOutput:
    """Collects the bands into the image's label map; subclasses write it at commit()."""

    def __init__(self, path: Path, source: ImageSource):
        self.path = path
        self.source = source
        self.labels = np.zeros((source.height, source.width), dtype=np.uint8)

    def write(self, y0: int, labels: np.ndarray, probs: np.ndarray | None) -> None:
        self.labels[y0:y0 + labels.shape[0]] = labels


class _LabelPngOutput(_LabelMapOutput):
    def commit(self) -> None:
        write_label_png(self.path, self.labels)


class _OverlayPngOutput(_LabelMapOutput):
    def commit(self) -> None:
        rgb = self.source.read(0, self.source.height, 0, self.source.width)
        write_rgb_png(self.path, overlay(rgb, self.labels))


class LabelPngWriter:
    """NAME_labels.png: an 8-bit palette PNG whose pixel values are the class indices."""

    key = "labels"

    def filename(self, name: str) -> str:
        return f"{name}_labels.png"

    def open(self, path: Path, source: ImageSource) -> ImageOutput:
        return _LabelPngOutput(path, source)


class OverlayPngWriter:
    """NAME_overlay.png: the scan with tissue classes tinted in their colours."""

    key = "overlay"

    def filename(self, name: str) -> str:
        return f"{name}_overlay.png"

    def open(self, path: Path, source: ImageSource) -> ImageOutput:
        return _OverlayPngOutput(path, source)


#: What bm-run writes for an ordinary scan, in record order.
DEFAULT_WRITERS: tuple[OutputWriter, ...] = (LabelPngWriter(), OverlayPngWriter())


__all__ = ["DEFAULT_WRITERS", "ImageOutput", "LabelPngWriter", "OutputWriter", "OverlayPngWriter", "write_rgb_png"]
