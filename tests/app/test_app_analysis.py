"""The app's computations, without Streamlit: decoding, segmentation, numbers and downloads."""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from app_fixtures import encode, paint_blocks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bonemarrow.app.analysis import analyse, find_model, percent, preview, upload_key
from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.io.readers import ImageReadError
from bonemarrow.runtime.metrics import class_counts
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.tiling import TilingConfig


@pytest.fixture(scope="module")
def model(model_path):
    return open_model(model_path, "cpu", threads=1)


def test_blocks_give_exact_fractions_table_and_downloads(model, blocks_scan, tmp_path):
    rgb, truth = blocks_scan
    ticks = []
    analysis = analyse(encode(rgb), "case 7.png", model, progress=lambda done, total: ticks.append((done, total)))
    assert np.array_equal(analysis.segmentation.labels, truth)
    assert analysis.fractions["bone_density"] == pytest.approx(1200 / 6200)
    rows = {row["class"]: row for row in analysis.fraction_rows()}
    assert [rows[c]["pixels"] for c in ("bone", "fat", "other")] == [1200, 2000, 3000]
    assert sum(row["share_of_tissue"] for row in rows.values()) == pytest.approx(1.0)
    assert rows["bone"]["color"] == "#ff0000"
    assert analysis.tissue_pixels == 6200
    # Progress reaches every tile.
    assert ticks and ticks[-1][0] == ticks[-1][1] == analysis.segmentation.tiles_total

    # The label download is the runtime's label PNG format and holds the exact labels.
    assert analysis.label_file_name == "case 7_labels.png"
    path = tmp_path / analysis.label_file_name
    path.write_bytes(analysis.label_png())
    assert np.array_equal(read_label_png(path), truth)

    # The results row has bm-run's columns and the numbers shown on the page.
    assert analysis.csv_file_name == "case 7_results.csv"
    (row,) = list(csv.DictReader(io.StringIO(analysis.results_csv())))
    assert (row["file"], row["name"], row["width"], row["height"]) == ("case 7.png", "case 7", "128", "96")
    assert (row["pixels_bone"], row["pixels_fat"], row["pixels_other"]) == ("1200", "2000", "3000")
    assert float(row["bone_density"]) == pytest.approx(1200 / 6200, abs=1e-6)


def test_previews_are_aligned_and_coloured(model, blocks_scan):
    rgb, truth = blocks_scan
    scan, colour, overlaid = analyse(encode(rgb), "b.png", model).previews()
    assert scan.shape == colour.shape == overlaid.shape == rgb.shape
    assert tuple(colour[25, 20]) == (255, 0, 0) and tuple(colour[0, 0]) == (0, 0, 0)
    assert tuple(overlaid[0, 0]) == tuple(rgb[0, 0])  # background keeps the scan
    assert tuple(overlaid[25, 20]) != tuple(rgb[25, 20])  # tissue is tinted


def test_large_scans_are_previewed_small_but_analysed_full_size(model):
    rgb, truth = paint_blocks(130, 2600, [(1, 20, 110, 100, 2500)])
    analysis = analyse(encode(rgb), "wide.png", model)
    assert analysis.segmentation.labels.shape == (130, 2600)
    assert int(analysis.segmentation.counts[1]) == 90 * 2400
    scan, colour, overlaid = analysis.previews()
    assert scan.shape == colour.shape == overlaid.shape == (60, 1200, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".tiff"])
def test_jpeg_and_tiff_uploads(model, blocks_scan, suffix):
    rgb, truth = blocks_scan
    analysis = analyse(encode(rgb, suffix), f"scan{suffix}", model)
    agreement = (analysis.segmentation.labels == truth).mean()
    assert agreement > (0.97 if suffix == ".jpg" else 0.999999)  # JPEG is lossy at block edges


def test_bad_file_and_oversized_image_are_one_clear_line(model, blocks_scan):
    with pytest.raises(ImageReadError, match=r"^notes\.png: not a PNG, JPEG or TIFF image$"):
        analyse(b"hello, I am text", "notes.png", model)
    with pytest.raises(ImageReadError, match=r"^cut\.png: truncated PNG"):
        analyse(encode(blocks_scan[0])[:200], "cut.png", model)
    with pytest.raises(ImageReadError, match=r"^big\.png: 128 x 96 = 12,288 pixels exceeds the limit of 10,000"):
        analyse(encode(blocks_scan[0]), "big.png", model, max_pixels=10_000)


def test_no_tissue_gives_undefined_fractions(model):
    rgb, _ = paint_blocks(64, 64, [])
    analysis = analyse(encode(rgb), "glass.png", model)
    assert analysis.tissue_pixels == 0
    assert all(math.isnan(row["share_of_tissue"]) for row in analysis.fraction_rows())
    assert percent(analysis.fractions["bone_density"]) == "\u2014"


def test_overlap_is_per_run_and_leaves_the_shared_model_alone(model, blocks_scan):
    rgb, truth = blocks_scan
    data = encode(rgb)
    none = analyse(data, "a.png", model, TilingConfig(overlap=0.0))
    half = analyse(data, "a.png", model, TilingConfig(overlap=0.5))
    assert half.segmentation.tiles_total > none.segmentation.tiles_total
    assert np.array_equal(none.segmentation.labels, half.segmentation.labels)
    # The shared model carries no settings: after another visitor's run the default is still overlap 0.25.
    dense = analyse(data, "a.png", model, TilingConfig(overlap=0.75))
    default = analyse(data, "a.png", model)
    quarter = analyse(data, "a.png", model, TilingConfig(overlap=0.25))
    assert default.segmentation.tiles_total == quarter.segmentation.tiles_total < dense.segmentation.tiles_total
    with pytest.raises(ValueError, match="overlap"):
        TilingConfig(overlap=1.0)


def test_upload_key_changes_with_every_input():
    base = upload_key(b"abc", "m", "CPUExecutionProvider", 0.25)
    assert base == upload_key(b"abc", "m", "CPUExecutionProvider", 0.25)
    others = {upload_key(b"abd", "m", "CPUExecutionProvider", 0.25), upload_key(b"abc", "n", "CPUExecutionProvider", 0.25),
              upload_key(b"abc", "m", "CUDAExecutionProvider", 0.25), upload_key(b"abc", "m", "CPUExecutionProvider", 0.3)}
    assert base not in others and len(others) == 4


def test_find_model_reports_why_there_is_none(monkeypatch, tmp_path, model_path):
    monkeypatch.setenv("BONEMARROW_MODEL", str(tmp_path / "missing.onnx"))
    path, why = find_model()
    assert path is None and "BONEMARROW_MODEL" in why and "missing.onnx" in why
    monkeypatch.setenv("BONEMARROW_MODEL", str(model_path))
    assert find_model() == (model_path, "")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(16, 90), width=st.integers(16, 90),
       blocks=st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.integers(0, 89), st.integers(1, 40),
                                 st.integers(0, 89), st.integers(1, 40)), max_size=4))
def test_counts_match_the_painted_areas(model, height, width, blocks):
    """Whatever is painted, the table's pixel counts are the painted areas (tiling loses nothing)."""
    rects = [(c, y, y + h, x, x + w) for c, y, h, x, w in blocks]
    rgb, truth = paint_blocks(height, width, rects)
    analysis = analyse(encode(rgb), "p.png", model)
    expected = class_counts(truth)
    assert [row["pixels"] for row in analysis.fraction_rows()] == [int(n) for n in expected[1:]]
    assert analysis.tissue_pixels == int(expected[1:].sum())


@given(height=st.integers(1, 300), width=st.integers(1, 300), side=st.integers(8, 200))
def test_preview_fits_and_keeps_label_values(height, width, side):
    labels = (np.arange(height * width) % 4).astype(np.uint8).reshape(height, width)
    small = preview(labels, max_side=side, nearest=True)
    assert max(small.shape) == min(max(height, width), side)
    assert set(np.unique(small)) <= set(np.unique(labels))
