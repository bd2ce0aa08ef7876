"""The results of a batch: one record per image, rendered as results.csv and results.json.

A record is a plain dict (what results.json holds per image); the ResultsBook
keeps one output folder's records and failures and rewrites both files
atomically after each change, so an interrupted run loses nothing it finished.
Any runner (the local thread pipeline, a later distributed one) fills the same book.
"""
from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bonemarrow.runtime.atomic import write_text_atomic
from bonemarrow.runtime.json_io import json_safe
from bonemarrow.runtime.labels import CLASSES
from bonemarrow.runtime.segmenter import Segmentation
from bonemarrow.runtime.tiling import TilingConfig

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
FORMAT_VERSION = 1

CSV_COLUMNS = ["file", "name", "width", "height", *(f"pixels_{c}" for c in CLASSES), "bone_density",
               "fat_fraction", "other_fraction", "seconds", "tiles_total", "tiles_skipped", "notes"]


def image_record(path: Path, name: str, result: Segmentation, notes: Sequence[str], model_sha256: str,
                 files: Mapping[str, str]) -> dict:
    """One image's row: sizes, pixels per class, fractions, timing, tiles, notes, its output files by key."""
    return {
        "file": str(path),
        "name": name,
        "width": result.width,
        "height": result.height,
        "pixels": {cls: int(n) for cls, n in zip(CLASSES, result.counts)},
        "bone_density": json_safe(result.fractions["bone_density"]),
        "fat_fraction": json_safe(result.fractions["fat_fraction"]),
        "other_fraction": json_safe(result.fractions["other_fraction"]),
        "seconds": round(result.seconds, 4),
        "model_seconds": round(result.model_seconds, 4),
        "tiles_total": result.tiles_total,
        "tiles_skipped": result.tiles_skipped,
        "notes": list(notes),
        **files,
        "model_sha256": model_sha256,
    }


def settings_record(config: TilingConfig, divisor: int) -> dict:
    """The tiling settings as results.json states them."""
    return {"tile": config.tile, "overlap": config.overlap, "batch": config.batch_size,
            "skip_background": config.skip_background, "divisor": divisor}


def render_csv(images: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in images:
        writer.writerow([r["file"], r["name"], r["width"], r["height"], *(r["pixels"][c] for c in CLASSES),
                         *("" if r[k] is None else f"{r[k]:.6f}" for k in ("bone_density", "fat_fraction",
                                                                            "other_fraction")),
                         r["seconds"], r["tiles_total"], r["tiles_skipped"], "; ".join(r.get("notes", []))])
    return buffer.getvalue()


@dataclass
class BatchReport:
    """What one run did: records in input order, failures, and counts for the closing line."""

    images: dict[str, dict] = field(default_factory=dict)  # name -> record, in input order
    failures: list[dict] = field(default_factory=list)
    processed: int = 0
    skipped: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


class ResultsBook:
    """results.json / results.csv for one output folder, rewritten atomically on each change."""

    def __init__(self, outdir: Path, model: dict, provider: str, settings: dict):
        self.outdir = outdir
        self.model, self.provider, self.settings = model, provider, settings
        self.images: dict[str, dict] = {}
        self.failures: dict[str, str] = {}
        self.lock = threading.Lock()

    def load_previous(self) -> None:
        """Keep the images an earlier run finished (a broken results.json is ignored: everything reruns).

        Failures are not carried over: `failures` lists the latest run's failures.
        """
        try:
            previous = json.loads((self.outdir / RESULTS_JSON).read_text())
            self.images = {r["name"]: r for r in previous.get("images", []) if isinstance(r, dict) and "name" in r}
        except (OSError, ValueError, TypeError, AttributeError):
            self.images = {}

    def is_finished(self, path: Path, name: str, outputs: Sequence[Path]) -> bool:
        """Recorded for this file with this model, and every output file present."""
        record = self.images.get(name)
        return (record is not None and record.get("file") == str(path)
                and record.get("model_sha256") == self.model["sha256"]
                and all(p.is_file() for p in outputs))

    def add(self, record: dict) -> None:
        with self.lock:
            self.images[record["name"]] = record
            self.failures.pop(record["file"], None)
            self._save()

    def fail(self, file: str, error: str, name: str | None = None) -> None:
        with self.lock:
            self.failures[file] = error
            if name is not None:
                self.images.pop(name, None)
            self._save()

    def _save(self) -> None:
        images = list(self.images.values())
        document = {
            "format_version": FORMAT_VERSION,
            "images": images,
            "failures": [{"file": f, "error": e} for f, e in self.failures.items()],
            "model": self.model,
            "provider": self.provider,
            "settings": self.settings,
        }
        write_text_atomic(self.outdir / RESULTS_JSON, json.dumps(document, indent=2, allow_nan=False) + "\n")
        write_text_atomic(self.outdir / RESULTS_CSV, render_csv(images))
