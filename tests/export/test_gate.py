"""The parity gate: its arithmetic, and an export it must refuse leaving nothing behind."""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from torch import nn

from bonemarrow.export import exporter, parity
from bonemarrow.export.cli import main
from bonemarrow.export.exporter import ExportOptions, export_model
from bonemarrow.runtime.labels import BONE, FAT

from conftest import SMALL_SHAPES


class TinyEnsemble(nn.Module):
    """The training contract in miniature (uint8 in, probabilities out), so gate tests export in ~1 s."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.members = nn.ModuleDict({
            name: nn.Sequential(nn.Conv2d(3, 8, k, padding=k // 2), nn.ReLU(), nn.Conv2d(8, 4, 1))
            for name, k in (("a", 3), ("b", 1))
        })
        self.member_names = ("a", "b")
        self.register_buffer("member_weights", torch.tensor([0.7, 0.3]))
        self.divisor = 32

    def forward(self, image):
        x = image.float() / 127.5 - 1.0
        return sum(w * torch.softmax(m(x), dim=1) for w, m in zip(self.member_weights, self.members.values()))


def _perturbing(real_export_graph):
    """export_graph, then scale the first output channel of every convolution by 1.05.

    (One channel only: changing every class's logit alike would leave the softmax unchanged.)
    """

    def broken(model, **kwargs):
        result = real_export_graph(model, **kwargs)
        for init in result.model.graph.initializer:
            weights = numpy_helper.to_array(init)
            if weights.ndim == 4:
                weights = weights.copy()
                weights[0] *= 1.05
                init.CopyFrom(numpy_helper.from_array(weights, init.name))
        return result

    return broken


def test_gate_refuses_a_broken_export_and_keeps_the_old_model(tmp_path, monkeypatch):
    output = tmp_path / "model.onnx"
    output.write_bytes(b"an older, good model")
    monkeypatch.setattr(exporter, "export_graph", _perturbing(exporter.export_graph))
    result = export_model(TinyEnsemble(), output, ExportOptions(shapes=SMALL_SHAPES))
    assert not result.passed and result.model_path is None
    assert output.read_bytes() == b"an older, good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.failed-parity.json", "model.onnx"]
    report = json.loads((tmp_path / "model.failed-parity.json").read_text())
    assert report["written"] is False and report["model_sha256"] is None
    assert any("probability difference" in f for f in report["gates"]["fp32"]["failures"])


def test_the_same_export_passes_unbroken_and_clears_an_old_failure_report(tmp_path):
    (tmp_path / "model.failed-parity.json").write_text("{}")
    result = export_model(TinyEnsemble(), tmp_path / "model.onnx", ExportOptions(shapes=SMALL_SHAPES))
    assert result.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.parity.json"]
    assert onnx.load(tmp_path / "model.onnx").graph.input[0].name == "image"


def test_cli_exits_3_when_the_gate_fails(tmp_path, monkeypatch, compact_checkpoint):
    # The CLI path end to end, with the tiny ensemble in place of the checkpoint's model (speed).
    from bonemarrow.training import checkpoint

    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, map_location: (TinyEnsemble(), {"preset": "compact"}))
    monkeypatch.setattr(exporter, "export_graph", _perturbing(exporter.export_graph))
    monkeypatch.setattr(exporter, "ExportOptions", functools.partial(exporter.ExportOptions, shapes=SMALL_SHAPES))
    output = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, [str(compact_checkpoint), "-o", str(output), "-q"])
    assert result.exit_code == 3, result.output
    assert "parity gate failed" in result.output and not output.exists()
    assert (tmp_path / "m.failed-parity.json").is_file()


def _probs(labels: np.ndarray, margin: float = 0.4) -> np.ndarray:
    """One-hot-ish probabilities [B,4,H,W] whose argmax is `labels` [B,H,W]."""
    probs = np.full((labels.shape[0], 4, *labels.shape[1:]), (1 - margin) / 4, np.float32)
    np.put_along_axis(probs, labels[:, None], (1 - margin) / 4 + margin, axis=1)
    return probs


def _sample(labels):
    return parity.Sample("synthetic", np.zeros((labels.shape[0], 3, *labels.shape[1:]), np.uint8))


def test_evaluate_passes_identical_and_names_each_failed_criterion():
    labels = np.random.default_rng(0).integers(0, 4, (2, 32, 64))
    reference = _probs(labels)
    same = parity.evaluate("fp32", [_sample(labels)], [reference], lambda image: reference.copy())
    assert same.passed and same.max_abs_prob_diff == 0 and same.label_agreement == 1

    shifted = parity.evaluate("fp32", [_sample(labels)], [reference], lambda image: reference + 2e-4)
    assert not shifted.passed and shifted.max_abs_prob_diff == pytest.approx(2e-4, rel=1e-3)

    flipped_labels = labels.copy()
    flipped_labels[0, 0, :3] = (flipped_labels[0, 0, :3] + 1) % 4  # 3 of 4096 pixels: 99.93 %
    flipped = parity.evaluate("fp32", [_sample(labels)], [reference], lambda image: _probs(flipped_labels))
    assert not flipped.passed and any("label agreement" in f for f in flipped.failures)
    assert flipped.label_agreement == pytest.approx(1 - 3 / labels.size)


def test_density_difference_is_gated_pooled_and_the_worst_tile_reported():
    labels = np.full((1, 32, 32), FAT)
    labels[0, :4] = BONE  # density 4/32 = 0.125 in each tile
    more_bone, less_bone = labels.copy(), labels.copy()
    more_bone[0, 4] = BONE  # 5/32
    less_bone[0, 3] = FAT  # 3/32
    samples = [_sample(labels), _sample(labels + 0)]
    candidates = iter([_probs(more_bone), _probs(less_bone)])
    report = parity.evaluate("int8", samples, [_probs(labels)] * 2, lambda image: next(candidates))
    assert report.worst_tile_density_diff == pytest.approx(1 / 32)
    assert report.density_diff == pytest.approx(0.0)  # the scan as a whole: 8/64 either way
    assert not report.passed and [f for f in report.failures if "label" in f]  # 1 row of 32 each: 96.9 %

    one_sided = iter([_probs(more_bone), _probs(more_bone)])
    biased = parity.evaluate("int8", samples, [_probs(labels)] * 2, lambda image: next(one_sided))
    assert biased.density_diff == pytest.approx(1 / 32)
    assert any("density" in f for f in biased.failures)  # 0.031 > 0.01


def test_tissue_seen_by_one_side_only_is_an_infinite_density_difference():
    assert parity._density_diff(math.nan, math.nan) == 0
    assert parity._density_diff(math.nan, 0.2) == math.inf
    assert parity._density_diff(0.3, 0.25) == pytest.approx(0.05)


def test_int8_gate_ignores_random_pixels_but_reports_them():
    labels = np.zeros((1, 32, 32), dtype=np.int64)
    noise = parity.Sample("random", np.zeros((1, 3, 32, 32), np.uint8))
    report = parity.evaluate("int8", [_sample(labels), noise], [_probs(labels)] * 2,
                             lambda image: _probs(labels) if image is not noise.image else _probs(labels + 1))
    assert report.passed and [s.label_agreement for s in report.samples] == [1.0, 0.0]


def test_report_json_has_no_nan():
    report = parity.not_runnable("fp16", "no GPU here")
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert "no GPU here" in text and not report.passed


@settings(max_examples=50, deadline=None)
@given(divisor=st.sampled_from([1, 8, 16, 32, 64]),
       shapes=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 600), st.integers(1, 600)), min_size=1, max_size=4))
def test_gate_shapes_are_the_smallest_divisor_multiples_covering_the_request(divisor, shapes):
    for (batch, height, width), (b, h, w) in zip(shapes, parity.gate_shapes(divisor, shapes)):
        assert b == batch and h % divisor == 0 and w % divisor == 0
        assert height <= h < height + divisor and width <= w < width + divisor


def test_default_gate_shapes_cover_batches_and_non_square_sizes():
    shapes = parity.gate_shapes(32)
    assert len(shapes) >= 3 and any(b > 1 for b, _, _ in shapes) and all(h != w for _, h, w in shapes)
    tiles = parity.synthetic_tiles(2, 64, 96, seed=0)
    assert tiles.shape == (2, 3, 64, 96) and tiles.dtype == np.uint8 and tiles.std() > 10


def test_a_precision_that_cannot_run_here_fails_its_gate_saying_where_it_runs(tmp_path, monkeypatch):
    pytest.importorskip("onnxconverter_common")
    real_session = exporter._session

    def no_fp16_kernels(data, providers, threads=None):
        session = real_session(data, providers, threads)
        if any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load_from_string(data).graph.initializer):
            raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Conv")
        return session

    monkeypatch.setattr(exporter, "_session", no_fp16_kernels)
    result = export_model(TinyEnsemble(), tmp_path / "m.onnx", ExportOptions(precision="fp16", shapes=SMALL_SHAPES))
    assert not result.passed and not (tmp_path / "m.onnx").exists()
    (failure,) = result.report["gates"]["fp16"]["failures"]
    assert "cannot run on CPUExecutionProvider" in failure and "CUDAExecutionProvider" in failure
    assert result.report["gates"]["fp32"]["passed"]


def test_fp16_is_gated_on_a_gpu_provider_when_there_is_one(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert exporter._gate_providers("fp16") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert exporter._gate_providers("int8") == ["CPUExecutionProvider"]
