"""bm-bench end to end on tiny inputs: the report's structure, units and files (never its timings)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
pytest.importorskip("torch", reason="torch is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'bonemarrow-seg[export]')")
pytest.importorskip("onnxsim", reason="onnxsim is not installed (pip install 'bonemarrow-seg[export]')")
from click.testing import CliRunner

from bonemarrow.benchmarks.cli import main
from bonemarrow.benchmarks.stats import SUMMARY_KEYS

TINY = ["--quick", "--override", "unet_features=4", "--override", "members=unet", "--tile", "64",
        "--whole-size", "600x200", "--scaling-mp", "0.02,0.05", "--threads", "1", "--quiet",
        "--machine", "test box"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(main, [*TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((out / "test-box_quick.json").read_text())  # a quick run: never test-box.json
    return out, report, result.output


def assert_summary(summary, unit):
    assert set(SUMMARY_KEYS) <= set(summary), summary
    assert summary["unit"] == unit and summary["n"] >= 1
    assert summary["min"] <= summary["q1"] <= summary["median"] <= summary["q3"] <= summary["max"]


def test_files_written_and_listed(bench):
    out, _, output = bench
    names = ["test-box_quick.json", "test-box_quick.md", "test-box_quick_tiles.png", "test-box_quick_whole.png",
             "test-box_quick_scaling.png"]
    for name in names:
        assert (out / name).is_file()
        assert str(out / name) in output
    for png in names[2:]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "test-box.json").exists()
    md = (out / "test-box_quick.md").read_text()
    for heading in ("## 1. Per tile", "## 2. Whole image", "## 3. Whole-image parity", "## 4. Scaling"):
        assert heading in md


def test_machine_block_and_settings(bench):
    _, report, _ = bench
    assert report["format_version"] == 1 and report["quick"] is True and report["errors"] == {}
    machine = report["machine"]
    for key in ("name", "cpu_model", "cpu_count", "memory_gib", "gpus", "versions", "hostname"):
        assert key in machine
    assert machine["name"] == "test-box"
    assert_summary(report["matmul_peak"], "GFLOP/s")
    assert report["settings"]["repeats"] == 1 and report["settings"]["threads"] == 1
    model = report["models"]["compact"]
    assert model["trained"] is False and model["source"] == "untrained compact"
    assert set(model["onnx"]) == {"fp32", "int8"} and all(v["origin"] == "exported" for v in model["onnx"].values())


def test_tile_section_rows(bench):
    _, report, _ = bench
    block = report["sections"]["tile"]["compact"]
    assert block["tile"] == 64 and block["gflop_per_tile"] > 0
    ok = [r for r in block["rows"] if r["status"] == "ok"]
    cpu = {(r["backend"], r["precision"], r["batch"]) for r in ok if r["device"] == "cpu"}
    assert cpu == {(b, p, n) for b, p in [("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
                   for n in (1, 2)}
    for r in ok:
        assert_summary(r["seconds_per_batch"], "s")
        assert_summary(r["ms_per_tile"], "ms")
        assert_summary(r["gflops"], "GFLOP/s")
        assert_summary(r["tiles_per_second"], "tiles/s")
        assert r["fraction_of_peak"] is None or r["fraction_of_peak"] > 0
    import torch

    if not torch.cuda.is_available():  # never invented: a CUDA row without a device says why it did not run
        cuda = [r for r in block["rows"] if r["device"] == "cuda"]
        assert cuda and all(r["status"] == "not run" and r["reason"] for r in cuda)
    else:  # PyTorch runs on the GPU in fp32 and fp16, at every batch size
        cuda = {(r["precision"], r["batch"]) for r in ok if r["device"] == "cuda" and r["backend"] == "pytorch"}
        assert cuda == {(p, n) for p in ("fp32", "fp16") for n in (1, 2)}


def test_whole_image_section(bench):
    _, report, _ = bench
    whole = report["sections"]["whole"]
    assert whole["image"]["width"] == 600 and whole["image"]["height"] == 200
    assert {name for name in whole["rows"] if not name.endswith("cuda")} == {"baseline", "bm-run fp32"}
    for name, row in whole["rows"].items():
        assert_summary(row["wall_s"], "s")
        assert_summary(row["peak_rss_mib"], "MiB")
        assert set(row["stages_s"]) == {"decode", "model", "blending", "writing"}
        for stage in row["stages_s"].values():
            assert_summary(stage, "s")
        acc = row["accuracy"]
        assert acc["weights"] == "untrained"
        assert set(acc["dice"]) == {"background", "bone", "fat", "other"}
        assert 0 <= acc["true_density"] <= 1
    assert whole["rows"]["baseline"]["crops"] == 2  # 480-px crops every 120 px over 600 x 200: x 0 and 120
    run = whole["rows"]["bm-run fp32"]
    assert run["speedup"]["unit"] == "x" and run["speedup"]["min"] <= run["speedup"]["median"] <= run["speedup"]["max"]
    assert isinstance(run["accuracy_equal_or_better"], bool)
    assert run["tiles_total"] >= 1


def test_parity_section(bench):
    _, report, _ = bench
    rows = report["sections"]["parity"]["compact"]["rows"]
    assert set(rows) == {"fp32", "int8"}
    assert rows["fp32"]["label_agreement"] > 0.999  # same weights, same tiler: fp32 must agree
    for row in rows.values():
        assert 0 <= row["label_agreement"] <= 1


def test_scaling_section(bench):
    _, report, _ = bench
    scaling = report["sections"]["scaling"]
    assert [round(r["megapixels"], 2) for r in scaling["rows"]] == [0.02, 0.05]
    for row in scaling["rows"]:
        assert_summary(row["wall_s"], "s")
        assert_summary(row["seconds_per_megapixel"], "s/MP")
        for key in ("peak_rss_mib", "working_mib", "beyond_labels_mib"):
            assert_summary(row[key], "MiB")
        assert row["width"] > row["height"]
    assert set(scaling["time_fit"]) == {"slope", "intercept", "r2", "unit"}


@pytest.mark.parametrize("args,message", [
    (["--sections", "tile,nope"], "unknown section"),
    (["--precisions", "int8"], "include fp32"),
    (["--whole-size", "big"], "WIDTHxHEIGHT"),
])
def test_usage_errors_exit_2(args, message, tmp_path):
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_model_without_checkpoint_is_refused(tmp_path):
    fake = tmp_path / "m.onnx"
    fake.write_bytes(b"x")
    result = CliRunner().invoke(main, ["--model", str(fake), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--checkpoint" in result.output


@pytest.mark.parametrize("override, message", [("unet_features=256", "unet_features must be an integer from 1 to 64"),
                                               ("deeplab_backbone=vgg", "unknown DeepLabv3 backbone 'vgg'")])
def test_overrides_are_bounded_before_any_model_is_built(tmp_path, monkeypatch, override, message):
    import bonemarrow.benchmarks.cli as cli

    monkeypatch.setattr(cli, "run_bench", lambda *a, **k: pytest.fail("the bench started"))
    result = CliRunner().invoke(main, ["--quick", "--override", override, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o").exists()


def test_an_unusable_checkpoint_is_one_line_and_exit_2(tmp_path):
    import torch

    bad = tmp_path / "bad.pt"
    torch.save({"format": "bonemarrow-checkpoint", "format_version": 1,
                "config": {"preset": "compact", "tile": "big"}, "model": {}}, bad)
    result = CliRunner().invoke(main, ["--checkpoint", str(bad), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}: unusable checkpoint config: tile must be an integer from 32 to 8192, got 'big'"


def test_report_renders_again_from_its_json(bench, tmp_path):
    out, _, _ = bench
    copy = tmp_path / "test-box.json"
    copy.write_bytes((out / "test-box_quick.json").read_bytes())
    from bonemarrow.benchmarks.report import rerender

    written = rerender(copy)
    assert (tmp_path / "test-box.md").read_text() == (out / "test-box_quick.md").read_text()
    assert {p.name for p in written} == {"test-box.md", "test-box_tiles.png", "test-box_whole.png",
                                         "test-box_scaling.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written if p.suffix == ".png")
