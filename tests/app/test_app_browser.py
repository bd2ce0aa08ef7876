"""bm-app in a real browser: Debian's chromium, headless, driven by Playwright.

Starts the app with `python -m bonemarrow.app.cli` (the bm-app launcher) on a free
localhost port, uploads a synthetic biopsy and waits for the result. The numbers
on the page and the downloaded label map must equal what the runtime API gives
for the same scan. Never downloads a browser: Playwright is pointed at
/usr/bin/chromium (apt-get install chromium) and the test is skipped without it.

BONEMARROW_APP_SCREENSHOT=docs/app_screenshot.png saves the page's screenshot
there; BONEMARROW_APP_SCREENSHOT_MODEL=PATH runs that model instead of the tiny
test model (e.g. the shipped one, for the README picture).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_SECONDS = 90
RESULT_MS = 90_000

pytest.importorskip("streamlit", reason="streamlit is not installed (pip install 'bonemarrow-seg[app]')")
playwright_sync = pytest.importorskip("playwright.sync_api",
                                      reason="playwright is not installed (pip install 'bonemarrow-seg[dev]')")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from app_fixtures import encode  # noqa: E402

from bonemarrow.app.analysis import percent  # noqa: E402
from bonemarrow.runtime.io.labels import read_label_png  # noqa: E402
from bonemarrow.runtime.model import open_model  # noqa: E402
from bonemarrow.runtime.segmenter import Segmenter  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bm-app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"bm-app did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(tmp_path, model_path):
    """bm-app serving `model` on a free port; stopped (its own process group only) afterwards."""
    model = Path(os.environ.get("BONEMARROW_APP_SCREENSHOT_MODEL") or model_path)
    port = free_port()
    log = tmp_path / "bm-app.log"
    env = {k: v for k, v in os.environ.items() if k not in ("BONEMARROW_MODEL", "BONEMARROW_MAX_PIXELS")}
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bonemarrow.app.cli", "--model", str(model), "--port", str(port),
             "--address", "127.0.0.1"], stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url, model
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def biopsy() -> np.ndarray:
    synth = pytest.importorskip("bonemarrow.training.synth")
    rgb, _ = synth.generate_biopsy(3, 480, 320)
    return rgb


def test_upload_in_chromium_shows_the_result_and_downloads_the_labels(app_url, biopsy, tmp_path):
    url, model = app_url
    expected = Segmenter(open_model(model, "cpu")).segment(biopsy)  # what the runtime API says for this scan
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1160}, accept_downloads=True)
            page.goto(url)
            page.get_by_text("Uploaded images are never stored").wait_for(timeout=RESULT_MS)
            page.locator('input[type="file"]').set_input_files(
                {"name": "biopsy.png", "mimeType": "image/png", "buffer": encode(biopsy)})

            values = page.locator('[data-testid="stMetricValue"]')
            values.first.wait_for(timeout=RESULT_MS)
            assert page.locator('[data-testid="stMetricLabel"]').first.inner_text().strip() == "Bone density"
            shown = [text.strip() for text in values.all_inner_texts()]
            fractions = expected.fractions
            assert shown == [percent(fractions["bone_density"]), percent(fractions["fat_fraction"]),
                             percent(fractions["other_fraction"])]
            assert page.get_by_text(f"Segmented biopsy.png: 480 x 320 pixels, {expected.tiles_total} tiles").is_visible()

            # Scan, labels and overlay are real pictures the browser decoded.
            pictures = page.locator('[data-testid="stImage"] img')
            pictures.nth(2).wait_for(timeout=RESULT_MS)
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                                   ".filter(img => img.complete && img.naturalWidth === 480).length === 3",
                                   timeout=RESULT_MS)
            page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=RESULT_MS)

            page.wait_for_timeout(500)  # let the chart finish drawing before the picture
            shot = tmp_path / "app_screenshot.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            target = os.environ.get("BONEMARROW_APP_SCREENSHOT")
            if target:
                Path(target).write_bytes(shot.read_bytes())

            with page.expect_download(timeout=RESULT_MS) as download_info:
                page.get_by_role("button", name="Download label map (PNG)").click()
            download = download_info.value
            assert download.suggested_filename == "biopsy_labels.png"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            assert np.array_equal(read_label_png(saved), expected.labels)
        finally:
            browser.close()
