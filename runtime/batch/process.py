"""One image's work, as plain functions: read -> segment into the writers' outputs -> commit -> record.

No threads, no shared state: `process_image` does the whole job for one input
and reports a failure as one line instead of raising, so any runner can call
it (the local thread pipeline, a distributed one). The local pipeline calls the
three stages (`read_image`, `segment_image`, `commit_outputs`) from different
threads so that decoding, inference and writing overlap.

Outputs come from a list of OutputWriters: a new output format is a new writer,
a new input format a new reader, and this file does not change.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bonemarrow.runtime.batch.results import image_record
from bonemarrow.runtime.errors import first_line
from bonemarrow.runtime.io.readers import ImageReadError, LoadedImage, read_rgb
from bonemarrow.runtime.io.writers import ImageOutput, OutputWriter
from bonemarrow.runtime.segmenter import Segmentation, Segmenter
from bonemarrow.runtime.tiling import Progress


def output_files(outdir: Path, name: str, writers: Sequence[OutputWriter]) -> list[Path]:
    """Where each writer's file for image NAME goes."""
    return [outdir / writer.filename(name) for writer in writers]


@dataclass
class Segmented:
    """An image segmented into its outputs, which are not yet committed to disk."""

    path: Path
    name: str
    result: Segmentation
    notes: list[str]
    outputs: list[ImageOutput]
    files: dict[str, str]  # record key -> output file name


@dataclass
class Outcome:
    """What processing one input gave: its record, or one line saying why it failed."""

    path: Path
    name: str
    record: dict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def failure_line(path: Path, message: str) -> str:
    """The message as one line that names the file."""
    return message if message.startswith(str(path)) else f"{path}: {message}"


def segmentation_failure(error: Exception) -> str:
    """Why reading or segmenting failed, in the words bm-run prints."""
    if isinstance(error, ImageReadError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory while segmenting"
    return f"segmentation failed ({first_line(error, with_type=True, limit=200)})"


def write_failure(error: OSError) -> str:
    return f"cannot write outputs ({error.strerror or error})"


def read_image(path: Path, max_pixels: int | None = None) -> LoadedImage:
    """Decode one input (ImageReadError with one line naming the file if it is unusable)."""
    return read_rgb(path, max_pixels)


def segment_image(segmenter: Segmenter, path: Path, name: str, loaded: LoadedImage, outdir: Path,
                  writers: Sequence[OutputWriter], progress: Progress | None = None) -> Segmented:
    """Segment a decoded image straight into every writer's output (nothing is on disk yet)."""
    source = loaded.source
    outputs = [writer.open(file, source) for writer, file in zip(writers, output_files(outdir, name, writers))]
    result = segmenter.segment_source(source, outputs, progress=progress)
    files = {writer.key: writer.filename(name) for writer in writers}
    return Segmented(path, name, result, list(loaded.notes), outputs, files)


def commit_outputs(segmented: Segmented, model_sha256: str) -> dict:
    """Write every output file (atomically) and return the image's results record; OSError if one fails."""
    for output in segmented.outputs:
        output.commit()
    return image_record(segmented.path, segmented.name, segmented.result, segmented.notes, model_sha256,
                        segmented.files)


def process_image(path: Path, name: str, segmenter: Segmenter, writers: Sequence[OutputWriter], outdir: Path, *,
                  max_pixels: int | None = None, progress: Progress | None = None) -> Outcome:
    """Read, segment and write one image; a bad input or unwritable output is an Outcome with `error`."""
    outcome = Outcome(Path(path), name)
    try:
        loaded = read_image(outcome.path, max_pixels)
        outcome.notes = list(loaded.notes)
        segmented = segment_image(segmenter, outcome.path, name, loaded, Path(outdir), writers, progress)
    except Exception as error:  # a bad file, or the model or tiler failed on this image
        outcome.error = failure_line(outcome.path, segmentation_failure(error))
        return outcome
    try:
        outcome.record = commit_outputs(segmented, segmenter.model.sha256)
    except OSError as error:
        outcome.error = failure_line(outcome.path, write_failure(error))
    return outcome


__all__ = ["Outcome", "Segmented", "commit_outputs", "failure_line", "output_files", "process_image",
           "read_image", "segment_image", "segmentation_failure", "write_failure"]
