"""What the app computes for one upload, as plain functions with no Streamlit in them.

Keeping this apart from the page lets tests check the numbers and the downloads
directly, and keeps the page script about layout only. Everything happens in
memory: the upload arrives as bytes, is decoded by the runtime's reader (same
header checks and pixel limit as bm-run), segmented, and the downloads are
encoded to bytes. Nothing is written to disk.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bonemarrow.runtime.batch.results import image_record, render_csv
from bonemarrow.runtime.io.labels import encode_label_png
from bonemarrow.runtime.io.readers import LoadedImage, decode_rgb
from bonemarrow.runtime.io.writers import DEFAULT_WRITERS, LabelPngWriter
from bonemarrow.runtime.labels import CLASSES, COLORS, TISSUE_CLASSES, colorize
from bonemarrow.runtime.model import LoadedModel, default_model_path
from bonemarrow.runtime.overlay import overlay
from bonemarrow.runtime.segmenter import Segmentation, Segmenter
from bonemarrow.runtime.tiling import Progress, TilingConfig

#: Upload types offered by the file picker (the reader checks the bytes, not the name).
UPLOAD_TYPES = ("png", "jpg", "jpeg", "tif", "tiff")
#: Longest side of the pictures sent to the browser; the analysis itself is full size.
PREVIEW_SIDE = 1200
#: Overlap choices offered: 0 up to this, exclusive of 1 (the tiler's limit).
MAX_OVERLAP = 0.75
#: bm-app --threads reaches the page through this variable.
THREADS_ENV = "BONEMARROW_APP_THREADS"


def app_threads() -> int | None:
    """CPU threads for the model from $BONEMARROW_APP_THREADS (None: onnxruntime's choice)."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"${THREADS_ENV} must be a positive integer, got {text!r}")
    return int(text)


def find_model() -> tuple[Path | None, str]:
    """(model path, "") or (None, why there is none): $BONEMARROW_MODEL, else the bundled model."""
    try:
        return default_model_path(), ""
    except FileNotFoundError as error:
        return None, str(error)


def upload_key(data: bytes, model_sha256: str, provider: str, overlap: float) -> str:
    """Identifies one analysis, so a page rerun (a click on a download) does not segment again."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest}:{model_sha256}:{provider}:{overlap:.4f}"


def percent(value: float) -> str:
    """A fraction as '12.3 %'; an em dash when undefined (no tissue)."""
    return "\u2014" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def preview(image: np.ndarray, max_side: int = PREVIEW_SIDE, nearest: bool = False) -> np.ndarray:
    """Shrink an image (or label map, with nearest=True) so its longest side is at most max_side."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


@dataclass
class Analysis:
    """One uploaded scan and its segmentation, with what the page shows and offers."""

    name: str  # the uploaded file's name
    loaded: LoadedImage
    segmentation: Segmentation
    model_sha256: str
    _previews: dict = field(default_factory=dict, repr=False)

    @property
    def stem(self) -> str:
        return Path(self.name).stem or "upload"

    @property
    def fractions(self) -> dict[str, float]:
        return self.segmentation.fractions

    # ------------------------------------------------------------ pictures
    def previews(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scan, colour labels, overlay) at preview size, computed once."""
        if not self._previews:
            scan = preview(self.loaded.rgb)
            labels = preview(self.segmentation.labels, nearest=True)
            if labels.shape != scan.shape[:2]:  # rounding can differ by a pixel; keep them aligned
                labels = cv2.resize(labels, scan.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            self._previews.update(scan=scan, colour=colorize(labels), overlay=overlay(scan, labels))
        return self._previews["scan"], self._previews["colour"], self._previews["overlay"]

    # ------------------------------------------------------------ numbers
    def fraction_rows(self) -> list[dict]:
        """One row per tissue class: pixels and share of tissue (what the chart and table show)."""
        counts = self.segmentation.counts
        tissue = int(sum(counts[c] for c in TISSUE_CLASSES))
        return [{
            "class": CLASSES[c],
            "pixels": int(counts[c]),
            "share_of_tissue": float(counts[c] / tissue) if tissue else math.nan,
            "color": "#{:02x}{:02x}{:02x}".format(*COLORS[c]),
        } for c in TISSUE_CLASSES]

    @property
    def tissue_pixels(self) -> int:
        return int(sum(self.segmentation.counts[c] for c in TISSUE_CLASSES))

    # ------------------------------------------------------------ downloads
    @property
    def label_file_name(self) -> str:
        return LabelPngWriter().filename(self.stem)

    @property
    def csv_file_name(self) -> str:
        return f"{self.stem}_results.csv"

    def label_png(self) -> bytes:
        """The label map in the runtime's format (palette PNG whose values are class indices)."""
        return encode_label_png(self.segmentation.labels)

    def results_csv(self) -> str:
        """The results row, with the same columns as bm-run's results.csv."""
        files = {writer.key: writer.filename(self.stem) for writer in DEFAULT_WRITERS}
        record = image_record(Path(self.name), self.stem, self.segmentation, self.loaded.notes, self.model_sha256,
                              files)
        return render_csv([record])


def analyse(data: bytes, name: str, model: LoadedModel, config: TilingConfig = TilingConfig(), *,
            progress: Progress | None = None, max_pixels: int | None = None) -> Analysis:
    """Decode an upload and segment it; ImageReadError (one line naming the file) for a bad one.

    The model is loaded once and shared by every visitor; each visitor's settings
    arrive as their own frozen `config`, so nothing shared is ever changed.
    """
    loaded = decode_rgb(data, name, max_pixels)
    result = Segmenter(model, config).segment(loaded.rgb, progress=progress)
    return Analysis(name=name, loaded=loaded, segmentation=result, model_sha256=model.sha256)
