"""The steps inside an export: onnxsim's fallback and the metadata entry."""
from __future__ import annotations

import logging

import onnx
import onnxsim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bonemarrow.export import onnx_export
from bonemarrow.export.metadata import METADATA_KEY, attach_metadata, build_metadata, read_metadata

from test_gate import TinyEnsemble


@pytest.fixture(scope="module")
def traced():
    return onnx_export.trace_to_onnx(TinyEnsemble(), divisor=32)


def test_trace_has_dynamic_batch_height_and_width(traced):
    assert onnx_export.has_dynamic_io(traced)
    assert onnx_export.io_dims(traced) == {"image": ["batch", 3, "height", "width"],
                                           "probs": ["batch", 4, "height", "width"]}


def test_simplify_keeps_dims_dynamic(traced):
    result = onnx_export.simplify(traced)
    assert result.simplified and result.simplify_note is None and onnx_export.has_dynamic_io(result.model)


def test_simplify_failure_keeps_the_original_with_a_warning(traced, monkeypatch, caplog):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(onnxsim, "simplify", crash)
    with caplog.at_level(logging.WARNING):
        result = onnx_export.simplify(traced)
    assert not result.simplified and result.model is traced
    assert "onnxsim failed (RuntimeError: boom)" in result.simplify_note and "boom" in caplog.text


def test_simplify_that_fixes_a_dim_is_refused(traced, monkeypatch):
    def fix_width(model, **kwargs):
        fixed = onnx.ModelProto.FromString(model.SerializeToString())
        fixed.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 64
        return fixed, True

    monkeypatch.setattr(onnxsim, "simplify", fix_width)
    result = onnx_export.simplify(traced)
    assert not result.simplified and result.model is traced and "fixed a dynamic dim" in result.simplify_note


def _meta(**overrides):
    values = dict(precision="int8", tile=512, divisor=32, member_names=["unet", "deeplabv3"],
                  member_weights=[0.6, 0.4], preset="compact", checkpoint_sha256="ab" * 32, opset=17)
    values.update(overrides)
    return build_metadata(**values)


def test_metadata_replaces_an_older_entry_and_keeps_other_props(traced):
    model = onnx.ModelProto.FromString(traced.SerializeToString())
    other = model.metadata_props.add()
    other.key, other.value = "author", "someone"
    attach_metadata(model, _meta(precision="fp32"))
    attach_metadata(model, _meta(precision="int8"))
    assert [p.key for p in model.metadata_props].count(METADATA_KEY) == 1
    assert {p.key: p.value for p in model.metadata_props}["author"] == "someone"
    meta = read_metadata(model)
    assert meta["precision"] == "int8" and meta["members"] == [{"name": "unet", "weight": 0.6},
                                                               {"name": "deeplabv3", "weight": 0.4}]


def test_metadata_refuses_what_would_break_the_contract():
    with pytest.raises(ValueError, match="multiple of the model's divisor"):
        _meta(tile=500)
    with pytest.raises(ValueError, match="precision"):
        _meta(precision="int4")
    with pytest.raises(ValueError, match="replace a contract key"):
        _meta(extra={"tile": 256})


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in _meta()),
                       st.one_of(st.integers(), st.text(max_size=20), st.lists(st.floats(allow_nan=False), max_size=3)),
                       max_size=4))
def test_metadata_round_trips_any_extra_json(extra):
    model = onnx.ModelProto()
    meta = _meta(extra=extra)
    attach_metadata(model, meta)
    assert read_metadata(model) == meta
