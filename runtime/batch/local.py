"""The batch job behind bm-run on one machine: many scans in, outputs and a results table out.

Three stages overlap in threads so the model never waits for disk: a reader
decodes the next scans while the model segments the current one, and a writer
commits the previous one's outputs (onnxruntime, OpenCV and zlib release the
GIL). Each stage is a function of batch/process.py; this module only schedules
them and keeps the books. After each image results.csv and results.json are
rewritten atomically, so an interrupted run loses nothing it had finished; a
rerun skips images that are finished (outputs present and recorded with the
same model) unless `overwrite`. A bad input costs one line and the run goes on.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from bonemarrow.runtime.batch.process import (Segmented, commit_outputs, failure_line, output_files, read_image,
                                              segment_image, segmentation_failure, write_failure)
from bonemarrow.runtime.batch.results import BatchReport, ResultsBook, settings_record
from bonemarrow.runtime.io.writers import DEFAULT_WRITERS, OutputWriter
from bonemarrow.runtime.model import LoadedModel
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig

#: Scans decoded ahead of the model, and results queued for writing: bounds memory.
READ_AHEAD = 2
WRITE_BEHIND = 2

Log = Callable[[str], None]


def run_batch(
    model: LoadedModel,
    config: TilingConfig,
    items: list[tuple[Path, str]],
    outdir: str | Path,
    *,
    writers: Sequence[OutputWriter] = DEFAULT_WRITERS,
    overwrite: bool = False,
    max_pixels: int | None = None,
    log: Log = print,
    error: Log = print,
    show_progress: bool = True,
    missing: list[tuple[str, str]] | None = None,
) -> BatchReport:
    """Segment (path, NAME) items into `outdir` with every writer; see the module docstring."""
    from tqdm import tqdm

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    config = config.resolved(model.info)
    segmenter = Segmenter(model, config)
    book = ResultsBook(outdir, {"path": str(model.info.path), "sha256": model.sha256}, model.provider,
                       settings_record(config, model.info.divisor))
    if not overwrite:
        book.load_previous()
    report = BatchReport()

    for file, problem in missing or []:
        error(f"error: {file}: {problem}")
        report.failures.append({"file": file, "error": problem})
        book.fail(file, problem)

    todo = []
    for path, name in items:
        if not overwrite and book.is_finished(path, name, output_files(outdir, name, writers)):
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
        line = failure_line(path, message)
        say_error(f"error: {line}")
        report.failures.append({"file": str(path), "error": line})
        book.fail(str(path), line, name)

    def write_stage(segmented: Segmented) -> None:
        try:
            record = commit_outputs(segmented, model.sha256)
        except OSError as exc:
            fail(segmented.path, segmented.name, write_failure(exc))
            return
        book.add(record)
        report.images[segmented.name] = record
        report.processed += 1

    with ThreadPoolExecutor(1, thread_name_prefix="bm-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="bm-write") as writer:
        reads: list[Future | None] = [reader.submit(read_image, path, max_pixels) for path, _ in todo[:READ_AHEAD]]
        writes: list[Future] = []
        for index, (path, name) in enumerate(todo):
            if index + READ_AHEAD < len(todo):
                reads.append(reader.submit(read_image, todo[index + READ_AHEAD][0], max_pixels))
            future, reads[index] = reads[index], None  # drop the reference: memory goes with it
            try:
                loaded = future.result()
                for note in loaded.notes:
                    say(f"note: {path}: {note}")
                segmented = segment_image(segmenter, path, name, loaded, outdir, writers,
                                          progress=tile_progress if show_progress else None)
            except Exception as exc:  # a bad file, or the model or tiler failed on this image: report, go on
                fail(path, name, segmentation_failure(exc))
            else:
                for finished in [w for w in writes if w.done()]:
                    finished.result()  # re-raise what the writer hit (e.g. an interrupt)
                    writes.remove(finished)
                while len(writes) >= WRITE_BEHIND:
                    writes.pop(0).result()
                writes.append(writer.submit(write_stage, segmented))
            images_bar.update(1)
        for pending in writes:
            pending.result()
    tiles_bar.close()
    images_bar.close()
    report.images = {name: report.images[name] for _, name in items if name in report.images}
    return report
