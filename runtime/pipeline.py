"""The batch job behind bm-run: many scans in, label maps, overlays and a results table out.

Three stages overlap in threads so the model never waits for disk: a reader
decodes the next scans while the model segments the current one, and a writer
encodes and writes the previous one's PNGs (onnxruntime, OpenCV and zlib release
the GIL). After each image results.csv and results.json are rewritten atomically,
so an interrupted run loses nothing it had finished; a rerun skips images that are
finished (outputs present and recorded with the same model) unless `overwrite`.
A bad input costs one line and the run goes on.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bonemarrow.runtime.atomic import write_text_atomic
from bonemarrow.runtime.image_io import ImageReadError, LoadedImage, read_rgb, write_rgb_png
from bonemarrow.runtime.json_io import json_safe
from bonemarrow.runtime.label_io import write_label_png
from bonemarrow.runtime.labels import CLASSES
from bonemarrow.runtime.model import LoadedModel
from bonemarrow.runtime.overlay import overlay
from bonemarrow.runtime.segmenter import Segmentation, Segmenter
from bonemarrow.runtime.tiling import TilingConfig

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
FORMAT_VERSION = 1
#: Scans decoded ahead of the model, and results queued for writing: bounds memory.
READ_AHEAD = 2
WRITE_BEHIND = 2

Log = Callable[[str], None]


def output_paths(outdir: Path, name: str) -> tuple[Path, Path]:
    return outdir / f"{name}_labels.png", outdir / f"{name}_overlay.png"


def image_record(path: Path, name: str, loaded: LoadedImage, result: Segmentation, model_sha256: str) -> dict:
    labels_path, overlay_path = output_paths(Path("."), name)
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
        "notes": list(loaded.notes),
        "labels": labels_path.name,
        "overlay": overlay_path.name,
        "model_sha256": model_sha256,
    }


CSV_COLUMNS = ["file", "name", "width", "height", *(f"pixels_{c}" for c in CLASSES), "bone_density",
               "fat_fraction", "other_fraction", "seconds", "tiles_total", "tiles_skipped", "notes"]


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

    def is_finished(self, path: Path, name: str) -> bool:
        record = self.images.get(name)
        return (record is not None and record.get("file") == str(path)
                and record.get("model_sha256") == self.model["sha256"]
                and all(p.is_file() for p in output_paths(self.outdir, name)))

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


def _write_outputs(outdir: Path, name: str, loaded: LoadedImage, result: Segmentation) -> None:
    labels_path, overlay_path = output_paths(outdir, name)
    write_label_png(labels_path, result.labels)
    write_rgb_png(overlay_path, overlay(loaded.rgb, result.labels))


def run_batch(
    model: LoadedModel,
    config: TilingConfig,
    items: list[tuple[Path, str]],
    outdir: str | Path,
    *,
    overwrite: bool = False,
    max_pixels: int | None = None,
    log: Log = print,
    error: Log = print,
    show_progress: bool = True,
    missing: list[tuple[str, str]] | None = None,
) -> BatchReport:
    """Segment (path, NAME) items into `outdir`; see the module docstring."""
    from tqdm import tqdm

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    info = model.info
    config = config.resolved(info)
    segmenter = Segmenter(model, config)
    book = ResultsBook(outdir, {"path": str(info.path), "sha256": model.sha256}, model.provider,
                       {"tile": config.tile, "overlap": config.overlap, "batch": config.batch_size,
                        "skip_background": config.skip_background, "divisor": info.divisor})
    if not overwrite:
        book.load_previous()
    report = BatchReport()

    for file, problem in missing or []:
        error(f"error: {file}: {problem}")
        report.failures.append({"file": file, "error": problem})
        book.fail(file, problem)

    todo = []
    for path, name in items:
        if not overwrite and book.is_finished(path, name):
            report.skipped += 1
            report.images[name] = book.images[name]
        else:
            todo.append((path, name))
    if report.skipped:
        log(f"skipping {report.skipped} finished image(s) in {outdir} (use --overwrite to redo them)")

    if show_progress:  # print above the bars instead of through them
        say = say_error = lambda line: tqdm.write(line, file=sys.stderr)
    else:
        say, say_error = log, error
    images_bar = tqdm(total=len(todo), desc="images", unit="img", disable=not show_progress, position=0)
    tiles_bar = tqdm(total=0, desc="tiles", unit="tile", disable=not show_progress, position=1, leave=False)

    def tile_progress(done: int, total: int) -> None:
        if tiles_bar.total != total:
            tiles_bar.reset(total=total)
        tiles_bar.n = done
        tiles_bar.refresh()

    def fail(path: Path, name: str, message: str) -> None:
        line = message if message.startswith(str(path)) else f"{path}: {message}"
        say_error(f"error: {line}")
        report.failures.append({"file": str(path), "error": line})
        book.fail(str(path), line, name)

    def write_stage(path: Path, name: str, loaded: LoadedImage, result: Segmentation) -> None:
        try:
            _write_outputs(outdir, name, loaded, result)
        except OSError as exc:
            fail(path, name, f"cannot write outputs ({exc.strerror or exc})")
            return
        record = image_record(path, name, loaded, result, model.sha256)
        book.add(record)
        report.images[name] = record
        report.processed += 1

    with ThreadPoolExecutor(1, thread_name_prefix="bm-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="bm-write") as writer:
        reads: list[Future] = [reader.submit(read_rgb, path, max_pixels) for path, _ in todo[:READ_AHEAD]]
        writes: list[Future] = []
        for index, (path, name) in enumerate(todo):
            if index + READ_AHEAD < len(todo):
                reads.append(reader.submit(read_rgb, todo[index + READ_AHEAD][0], max_pixels))
            future, reads[index] = reads[index], None  # drop the reference: memory goes with it
            try:
                loaded = future.result()
                for note in loaded.notes:
                    say(f"note: {path}: {note}")
                result = segmenter.segment(loaded.rgb, progress=tile_progress if show_progress else None)
            except ImageReadError as exc:
                fail(path, name, str(exc))
            except MemoryError:
                fail(path, name, "out of memory while segmenting")
            except Exception as exc:  # the model or tiler failed on this image: report, go on
                fail(path, name, f"segmentation failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            else:
                for finished in [w for w in writes if w.done()]:
                    finished.result()  # re-raise what the writer hit (e.g. an interrupt)
                    writes.remove(finished)
                while len(writes) >= WRITE_BEHIND:
                    writes.pop(0).result()
                writes.append(writer.submit(write_stage, path, name, loaded, result))
            images_bar.update(1)
        for pending in writes:
            pending.result()
    tiles_bar.close()
    images_bar.close()
    ordered = {name: report.images[name] for _, name in items if name in report.images}
    report.images = ordered
    return report
