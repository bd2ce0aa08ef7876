"""batch/process.py: one image through any list of output writers, as a plain function; and the
local runner using the same writers without knowing what they are."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import rt_models
from conftest import tissue_image
from bonemarrow.runtime.atomic import write_text_atomic
from bonemarrow.runtime.batch.local import run_batch
from bonemarrow.runtime.batch.process import process_image
from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.io.writers import LabelPngWriter
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig


class BandLogWriter:
    """A test-only output: one line per band (start row, rows, bone pixels) in NAME_bands.txt."""

    key = "bands"

    def filename(self, name: str) -> str:
        return f"{name}_bands.txt"

    def open(self, path: Path, source):
        return _BandLog(path)


class _BandLog:
    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def write(self, y0, labels, probs):
        self.lines.append(f"{y0} {labels.shape[0]} {int((labels == 1).sum())}")

    def commit(self):
        write_text_atomic(self.path, "\n".join(self.lines) + "\n")


class _Unwritable(_BandLog):
    def commit(self):
        raise PermissionError(13, "Permission denied")


class UnwritableWriter(BandLogWriter):
    """A test-only output whose file can never be written."""

    def open(self, path: Path, source):
        return _Unwritable(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = rt_models.save(rt_models.receptive(rt_models.metadata(tile=48, divisor=8)),
                          tmp_path_factory.mktemp("proc") / "m.onnx")
    return open_model(path, "cpu", threads=1)


@pytest.fixture
def scan(tmp_path):
    rgb = tissue_image(90, 130, seed=3)
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    return path, rgb


def test_one_image_goes_to_every_writer_and_gives_a_record(model, scan, tmp_path):
    path, rgb = scan
    segmenter = Segmenter(model, TilingConfig(overlap=0.5))
    outcome = process_image(path, "scan", segmenter, [LabelPngWriter(), BandLogWriter()], tmp_path / "out")
    assert outcome.error is None and outcome.notes == []
    expected = segmenter.segment(rgb)
    np.testing.assert_array_equal(read_label_png(tmp_path / "out/scan_labels.png"), expected.labels)
    lines = (tmp_path / "out/scan_bands.txt").read_text().split("\n")[:-1]
    assert sum(int(line.split()[1]) for line in lines) == 90  # every row once, band by band
    assert sum(int(line.split()[2]) for line in lines) == int(expected.counts[1])
    record = outcome.record
    assert record["labels"] == "scan_labels.png" and record["bands"] == "scan_bands.txt" and "overlay" not in record
    assert record["pixels"]["bone"] == int(expected.counts[1]) and record["model_sha256"] == model.sha256
    assert not (tmp_path / "out/scan_overlay.png").exists()  # only the writers asked for


def test_a_bad_input_and_an_unwritable_output_are_one_line_each(model, scan, tmp_path):
    segmenter = Segmenter(model)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    outcome = process_image(bad, "bad", segmenter, [BandLogWriter()], tmp_path / "out")
    assert outcome.record is None and outcome.error == f"{bad}: not a PNG, JPEG or TIFF image"
    assert not (tmp_path / "out/bad_bands.txt").exists()
    outcome = process_image(scan[0], "scan", segmenter, [UnwritableWriter()], tmp_path / "out")
    assert outcome.record is None
    assert outcome.error == f"{scan[0]}: cannot write outputs (Permission denied)"


def test_the_local_runner_takes_any_writers_and_resumes_on_their_files(model, scan, tmp_path):
    path, _ = scan
    out = tmp_path / "out"
    report = run_batch(model, TilingConfig(), [(path, "scan")], out, writers=[BandLogWriter()],
                       show_progress=False, log=lambda line: None, error=lambda line: None)
    assert report.processed == 1 and not report.failures
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "scan_bands.txt"]
    document = json.loads((out / "results.json").read_text())
    assert document["images"][0]["bands"] == "scan_bands.txt"
    assert document["settings"] == {"tile": 48, "overlap": 0.25, "batch": 4, "skip_background": True, "divisor": 8}
    again = run_batch(model, TilingConfig(), [(path, "scan")], out, writers=[BandLogWriter()],
                      show_progress=False, log=lambda line: None, error=lambda line: None)
    assert again.skipped == 1 and again.processed == 0
    (out / "scan_bands.txt").unlink()  # an output missing: the image is redone
    third = run_batch(model, TilingConfig(), [(path, "scan")], out, writers=[BandLogWriter()],
                      show_progress=False, log=lambda line: None, error=lambda line: None)
    assert third.processed == 1
