"""The Streamlit page, run by Streamlit's AppTest: what a visitor sees for each situation."""
from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest

pytest.importorskip("streamlit", reason="streamlit is not installed (pip install 'bonemarrow-seg[app]')")
import streamlit as st  # noqa: E402
from app_fixtures import encode, paint_blocks  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from bonemarrow.runtime import model as model_module  # noqa: E402
from bonemarrow.runtime.segmenter import Segmenter  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
TIMEOUT = 60  # the first run imports onnxruntime, pandas and altair on a busy 2-core box


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """Each test loads its own model: no model carried over from another test."""
    monkeypatch.delenv("BONEMARROW_MAX_PIXELS", raising=False)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def page(monkeypatch, model_path):
    monkeypatch.setenv("BONEMARROW_MODEL", str(model_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at.file_uploader[0].upload(name, data, mime)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_page_states_that_nothing_is_stored(page):
    assert any("never stored" in text and "nothing is written to disk" in text for text in texts(page.info))
    assert page.file_uploader[0].allowed_type == [".png", ".jpg", ".jpeg", ".tif", ".tiff"]
    assert not page.metric  # nothing to show before an upload


def test_upload_shows_pictures_fractions_table_and_downloads(page, blocks_scan):
    upload(page, "blocks.png", encode(blocks_scan[0]))
    assert not page.error
    assert "Segmented blocks.png: 128 x 96 pixels" in page.success[0].value
    assert [(m.label, m.value) for m in page.metric] == [
        ("Bone density", "19.4 %"), ("Fat", "32.3 %"), ("Other tissue", "48.4 %")]
    table = page.dataframe[0].value
    assert list(table["class"]) == ["bone", "fat", "other"]
    assert list(table["pixels"]) == [1200, 2000, 3000]
    assert list(table["share_of_tissue"]) == ["19.4 %", "32.3 %", "48.4 %"]
    images = page.get("image")
    assert [image.captions[0] for image in images] == [
        "Scan", "Labels: bone red, fat green, other tissue blue", "Overlay"]
    assert [b.label for b in page.download_button] == ["Download label map (PNG)", "Download results row (CSV)"]
    assert page.download_button[0].proto.url.endswith(".png")
    assert page.download_button[1].proto.url.endswith(".csv")
    assert "6,200 tissue pixels; 6,088 background pixels." in texts(page.caption)


def test_model_is_loaded_once_and_reruns_do_not_segment_again(monkeypatch, model_path, blocks_scan):
    calls = {"load": 0, "segment": 0}
    real_open, real_segment = model_module.open_model, Segmenter.segment

    def counting_open(*args, **kwargs):
        calls["load"] += 1
        return real_open(*args, **kwargs)

    def counting_segment(self, *args, **kwargs):
        calls["segment"] += 1
        return real_segment(self, *args, **kwargs)

    monkeypatch.setattr(model_module, "open_model", counting_open)
    monkeypatch.setattr(Segmenter, "segment", counting_segment)
    monkeypatch.setenv("BONEMARROW_MODEL", str(model_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    upload(at, "blocks.png", encode(blocks_scan[0]))
    assert "6 tiles" in at.success[0].value
    at.run()  # e.g. a click on a download: same upload, same settings
    at.run()
    assert calls == {"load": 1, "segment": 1}
    at.slider(key="overlap").set_value(0.0).run()  # a new setting: segment again, same model
    assert "4 tiles" in at.success[0].value
    assert calls == {"load": 1, "segment": 2}
    assert at.metric[0].value == "19.4 %"


def test_bad_file_gets_one_clear_message(page):
    upload(page, "notes.png", b"this is not an image at all")
    assert texts(page.error) == ["Cannot use this file: notes.png: not a PNG, JPEG or TIFF image"]
    assert not page.metric and not page.download_button


def test_image_over_the_size_limit_is_refused(monkeypatch, page, blocks_scan):
    monkeypatch.setenv("BONEMARROW_MAX_PIXELS", "10000")
    upload(page, "big.png", encode(blocks_scan[0]))
    (message,) = texts(page.error)
    assert message.startswith("Cannot use this file: big.png: 128 x 96 = 12,288 pixels exceeds the limit of 10,000")
    assert not page.metric


@pytest.mark.parametrize("suffix,mime", [(".jpg", "image/jpeg"), (".tif", "image/tiff")])
def test_jpeg_and_tiff_uploads(page, blocks_scan, suffix, mime):
    upload(page, f"scan{suffix}", encode(blocks_scan[0], suffix), mime)
    assert not page.error
    assert page.metric[0].label == "Bone density" and page.metric[0].value.endswith(" %")


def test_glass_only_says_there_is_no_tissue(page):
    upload(page, "glass.png", encode(paint_blocks(64, 64, [])[0]))
    assert "No tissue was found" in page.warning[0].value
    assert page.metric[0].value == "\u2014" and not page.dataframe


def test_no_model_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("BONEMARROW_MODEL", str(tmp_path / "missing.onnx"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    (message,) = texts(at.error)
    assert message.startswith("No model to run: $BONEMARROW_MODEL points to") and "missing.onnx" in message
    assert not at.file_uploader


def test_broken_model_is_a_clear_message(monkeypatch, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    monkeypatch.setenv("BONEMARROW_MODEL", str(broken))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    (message,) = texts(at.error)
    assert message.startswith("The model cannot be used:") and "broken.onnx" in message
    assert not at.file_uploader


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(),
                    reason="this onnxruntime can use CUDA, so there is no failure to show")
def test_cuda_provider_without_cuda_says_why(page):
    page.selectbox(key="provider").set_value("cuda").run()
    (message,) = texts(page.error)
    assert message.startswith("The model cannot be used: --provider cuda:") and "cpu" in message
