"""bm-run end to end: outputs, bad inputs, exit codes, resume, --overwrite, interruption."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import rt_models
from conftest import tissue_image
from test_rt_readers import huge_png_header
from bonemarrow.runtime.cli.run import main
from bonemarrow.runtime.io import writers
from bonemarrow.runtime.io.labels import read_label_png
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter


@pytest.fixture
def setup(tmp_path):
    model = rt_models.save(rt_models.receptive(rt_models.metadata(tile=48, divisor=8)), tmp_path / "m.onnx")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, (h, w) in enumerate([(90, 130), (70, 60), (40, 150)]):
        cv2.imwrite(str(inputs / f"scan{i}.png"), tissue_image(h, w, seed=i)[..., ::-1])
    return tmp_path, model, inputs


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_outputs_and_results_match_the_python_api(setup):
    tmp, model, inputs = setup
    result = run(inputs, "-o", tmp / "out", "--model", model, "--quiet")
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp / "out/results.json").read_text())
    assert [r["name"] for r in document["images"]] == ["scan0", "scan1", "scan2"]
    assert document["failures"] == [] and document["provider"] == "CPUExecutionProvider"
    assert document["model"]["path"] == str(model) and len(document["model"]["sha256"]) == 64
    segmenter = Segmenter(open_model(model, "cpu"))
    for record in document["images"]:
        rgb = cv2.imread(str(inputs / f"{record['name']}.png"))[..., ::-1]
        expected = segmenter.segment(np.ascontiguousarray(rgb))
        labels = read_label_png(tmp / "out" / f"{record['name']}_labels.png")
        np.testing.assert_array_equal(labels, expected.labels)
        overlay = cv2.imread(str(tmp / "out" / f"{record['name']}_overlay.png"))
        assert overlay.shape == rgb.shape
        assert (record["width"], record["height"]) == (rgb.shape[1], rgb.shape[0])
        assert list(record["pixels"].values()) == expected.counts.tolist()
        assert record["bone_density"] == pytest.approx(expected.fractions["bone_density"])
        for key in ("fat_fraction", "other_fraction", "seconds", "tiles_total", "tiles_skipped"):
            assert key in record
    csv_lines = (tmp / "out/results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("file,name,width,height") and len(csv_lines) == 4


def test_every_bad_input_gets_one_line_and_the_batch_goes_on(setup, monkeypatch):
    tmp, model, inputs = setup
    good = (inputs / "scan0.png").read_bytes()
    jpeg = cv2.imencode(".jpg", tissue_image(64, 64))[1].tobytes()
    tiff = cv2.imencode(".tif", tissue_image(64, 64))[1].tobytes()
    bad = {"empty.png": b"", "cutpng.png": good[: len(good) // 2], "cutjpg.jpg": jpeg[: len(jpeg) // 2],
           "cuttif.tif": tiff[: len(tiff) // 2], "text.png": b"hello, not an image", "bomb.png":
           huge_png_header(50_000, 50_000)}
    for name, data in bad.items():
        (inputs / name).write_bytes(data)
    (inputs / "dangling.png").symlink_to(tmp / "gone.png")  # a link to nothing
    monkeypatch.setenv("BONEMARROW_MAX_PIXELS", str(10**8))
    result = run(inputs, inputs / "dangling.png", tmp / "absent.png", "-o", tmp / "out", "--model", model,
                 "--quiet")
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == len(bad) + 2, lines
    for name in [*bad, "dangling.png", "absent.png"]:
        assert sum(name in line for line in lines) == 1, "\n".join(lines)
    assert any("exceeds the limit" in line and "bomb.png" in line for line in lines)
    document = json.loads((tmp / "out/results.json").read_text())
    assert len(document["images"]) == 3 and len(document["failures"]) == len(bad) + 2
    assert all((tmp / "out" / f"scan{i}_labels.png").is_file() for i in range(3))


def test_resume_skips_finished_images_and_overwrite_redoes_them(setup):
    tmp, model, inputs = setup
    out = tmp / "out"
    assert run(inputs, "-o", out, "--model", model, "--quiet").exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "scan1_overlay.png").unlink()  # unfinished: must be redone
    result = run(inputs, "-o", out, "--model", model)
    assert result.exit_code == 0
    assert "skipping 2 finished image(s)" in result.stderr and "done: 1 segmented, 2 already finished" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("scan[02]_*.png")} == \
        {k: v for k, v in stamps.items() if k.startswith(("scan0", "scan2"))}
    assert len(json.loads((out / "results.json").read_text())["images"]) == 3
    result = run(inputs, "-o", out, "--model", model, "--overwrite")
    assert "done: 3 segmented, 0 already finished" in result.stderr
    assert all(p.stat().st_mtime_ns != stamps[p.name] for p in out.glob("scan[02]_*.png"))


def test_a_different_model_does_not_count_as_finished(setup, tmp_path):
    tmp, model, inputs = setup
    out = tmp / "out"
    run(inputs, "-o", out, "--model", model, "--quiet")
    other = rt_models.save(rt_models.pixelwise(), tmp_path / "other.onnx")
    result = run(inputs, "-o", out, "--model", other)
    assert "done: 3 segmented, 0 already finished" in result.stderr


def test_an_interrupted_run_leaves_no_half_written_file_and_resumes(setup, monkeypatch):
    tmp, model, inputs = setup
    out = tmp / "out"
    real = writers.write_rgb_png
    calls = {"n": 0}

    def interrupted(path, rgb, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            from bonemarrow.runtime.atomic import atomic_path
            with atomic_path(path) as partial:  # die half way through writing
                partial.write_bytes(b"\x89PNG half")
                raise KeyboardInterrupt
        return real(path, rgb, *args, **kwargs)

    monkeypatch.setattr(writers, "write_rgb_png", interrupted)
    interrupted_run = run(inputs, "-o", out, "--model", model, "--quiet")
    assert interrupted_run.exit_code == 1 and "Aborted" in interrupted_run.stderr  # click's Ctrl-C handling
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    document = json.loads((out / "results.json").read_text())
    recorded = [r["name"] for r in document["images"]]
    assert "scan0" in recorded and "scan1" not in recorded  # the interrupted image is not recorded ...
    assert not (out / "scan1_overlay.png").exists()  # ... and left no output under its final name
    monkeypatch.setattr(writers, "write_rgb_png", real)
    result = run(inputs, "-o", out, "--model", model)
    assert f"done: {3 - len(recorded)} segmented, {len(recorded)} already finished" in result.stderr


def test_model_and_provider_errors_are_usage_errors(setup):
    tmp, model, inputs = setup
    (tmp / "broken.onnx").write_bytes(model.read_bytes()[:50])
    result = run(inputs, "-o", tmp / "out", "--model", tmp / "broken.onnx")
    assert result.exit_code == 2 and len(error_lines(result)) == 1 and "cannot load the model" in result.stderr
    import onnxruntime
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        result = run(inputs, "-o", tmp / "out", "--model", model, "--provider", "cuda")
        assert result.exit_code == 2 and error_lines(result) == [result.stderr.strip()]
        assert "--provider cuda" in result.stderr
    result = run(inputs, "-o", tmp / "out", "--model", model, "--overlap", "1.5")
    assert result.exit_code == 2


def test_default_model_missing_tells_to_pass_model(setup, monkeypatch):
    tmp, _, inputs = setup
    from bonemarrow.runtime import model
    monkeypatch.delenv("BONEMARROW_MODEL", raising=False)
    monkeypatch.setattr(model, "bundled_model_path", lambda: tmp / "nope.onnx")
    result = run(inputs, "-o", tmp / "out")
    assert result.exit_code == 2 and "--model" in result.stderr


def test_no_skip_background_and_tile_options_change_the_tiling(setup):
    tmp, model, inputs = setup
    cv2.imwrite(str(tmp / "big.png"), tissue_image(200, 300))
    run(tmp / "big.png", "-o", tmp / "a", "--model", model, "--quiet", "--tile", "32")
    run(tmp / "big.png", "-o", tmp / "b", "--model", model, "--quiet", "--tile", "32", "--no-skip-background")
    a = json.loads((tmp / "a/results.json").read_text())["images"][0]
    b = json.loads((tmp / "b/results.json").read_text())["images"][0]
    assert a["tiles_total"] == b["tiles_total"] and a["tiles_skipped"] > 0 and b["tiles_skipped"] == 0


def test_table_of_fractions_on_stdout_unless_quiet(setup):
    tmp, model, inputs = setup
    result = run(inputs, "-o", tmp / "out", "--model", model)
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp / "out/results.json").read_text())
    rows = result.stdout.splitlines()[2:]
    assert [row.split()[0] for row in rows] == [r["name"] for r in document["images"]]
    for row, record in zip(rows, document["images"]):
        assert row.split()[2] == f"{100 * record['bone_density']:.1f}%"
    quiet = run(inputs, "-o", tmp / "out2", "--model", model, "--quiet")
    assert quiet.stdout == ""
