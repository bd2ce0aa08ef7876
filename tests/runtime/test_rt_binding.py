"""IO binding (fixed, reused buffers per batch shape) gives exactly session.run's outputs; on the CPU provider."""
from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rt_models
from conftest import tissue_image
from bonemarrow.runtime.binding import BoundRunner
from bonemarrow.runtime.model import open_model
from bonemarrow.runtime.segmenter import Segmenter
from bonemarrow.runtime.tiling import TilingConfig


def two_outputs(channels: int = 3) -> onnx.ModelProto:
    """pixelwise's probs plus a second float output of `channels` channels that depends on the image."""
    model = rt_models.pixelwise()
    graph = model.graph
    graph.node.extend([
        helper.make_node("Conv", ["x", "w2"], ["extra"]),
        helper.make_node("Mul", ["extra", "scale2"], ["disagreement"]),
    ])
    rng = np.random.default_rng(0)
    graph.initializer.extend([
        numpy_helper.from_array(rng.integers(-2, 3, (channels, 3, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.float32(1 / 255), "scale2"),
    ])
    graph.output.append(helper.make_tensor_value_info("disagreement", TensorProto.FLOAT,
                                                      ["B", channels, "H", "W"]))
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def path_pixelwise(tmp_path):
    return rt_models.save(rt_models.pixelwise(), tmp_path / "pixelwise.onnx")


@pytest.fixture
def path_two(tmp_path):
    return rt_models.save(two_outputs(), tmp_path / "two.onnx")


def batches(seed: int, shapes):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


@pytest.mark.parametrize("fixture", ["path_pixelwise", "path_two"])
def test_bound_runner_equals_session_run_for_every_output(fixture, request):
    model = open_model(request.getfixturevalue(fixture), "cpu", 1, io_binding=False)
    runner = BoundRunner(model.session, "image", device="cpu")
    names = model.output_names
    shapes = [(4, 3, 16, 24), (4, 3, 16, 24), (1, 3, 8, 8), (4, 3, 16, 24), (2, 3, 32, 16)]
    for batch in batches(1, shapes):  # first call of a shape, then replays through the fixed buffers
        bound = runner.run(batch)
        plain = model.session.run(None, {"image": batch})
        assert list(bound) == list(names)
        for name, expected in zip(names, plain):
            assert bound[name].dtype == expected.dtype
            np.testing.assert_array_equal(bound[name], expected)


def test_bound_runner_reuses_its_buffers_and_can_run_a_subset_of_outputs(path_two):
    model = open_model(path_two, "cpu", 1)
    runner = BoundRunner(model.session, "image")
    a, b, c = batches(2, [(2, 3, 8, 16)] * 3)
    runner.run(a)
    first = runner.run(b)["probs"]
    first_values = first.copy()
    second = runner.run(c)["probs"]
    assert np.shares_memory(first, second)  # the same host buffer, overwritten
    np.testing.assert_array_equal(first_values, model.session.run(["probs"], {"image": b})[0])
    only = runner.run(c, ["disagreement"])
    assert list(only) == ["disagreement"]
    np.testing.assert_array_equal(only["disagreement"], model.session.run(["disagreement"], {"image": c})[0])
    with pytest.raises(ValueError, match="no output nope"):
        runner.run(c, ["nope"])


def test_bound_runner_keeps_a_bounded_number_of_shapes(path_pixelwise):
    model = open_model(path_pixelwise, "cpu", 1)
    runner = BoundRunner(model.session, "image", max_shapes=2)
    for batch in batches(3, [(1, 3, 8, 8), (2, 3, 8, 8), (3, 3, 8, 8), (2, 3, 8, 8)]):
        np.testing.assert_array_equal(runner.run(batch)["probs"], model.session.run(None, {"image": batch})[0])
    assert [key[0] for key in runner.shapes] == [(3, 3, 8, 8), (2, 3, 8, 8)]


def test_bound_runner_refuses_bad_devices(path_pixelwise):
    model = open_model(path_pixelwise, "cpu", 1)
    with pytest.raises(ValueError, match="cpu or cuda"):
        BoundRunner(model.session, "image", device="tpu")
    with pytest.raises(ValueError, match="CUDA graphs"):
        BoundRunner(model.session, "image", cuda_graph=True)


def test_loaded_model_with_io_binding_predicts_like_without(path_two):
    plain = open_model(path_two, "cpu", 1)
    bound = open_model(path_two, "cpu", 1, io_binding=True)
    assert not plain.io_binding and bound.io_binding  # the CPU default is plain session.run
    for batch in batches(4, [(4, 3, 16, 16), (4, 3, 16, 16), (3, 3, 16, 16)]):
        np.testing.assert_array_equal(bound.predict(batch), plain.predict(batch))
        for name, array in bound.run(batch).items():
            np.testing.assert_array_equal(array, plain.run(batch)[name])
    assert bound.model_seconds > 0


def test_owned_and_borrowed_outputs(path_pixelwise):
    model = open_model(path_pixelwise, "cpu", 1, io_binding=True)
    a, b = batches(5, [(2, 3, 8, 8)] * 2)
    kept = model.predict(a)
    model.predict(b)
    assert not np.shares_memory(kept, model.predict(b))  # predict's arrays are the caller's
    view_a = model.predict_view(a)
    view_b = model.predict_view(b)
    assert np.shares_memory(view_a, view_b)  # predict_view's are the thread's buffer
    np.testing.assert_array_equal(kept, model.session.run(None, {"image": a})[0])


def test_segmenter_labels_are_the_same_with_io_binding_and_fixed_batches(path_pixelwise):
    image = tissue_image(150, 130, seed=4)
    config = TilingConfig(tile=32, overlap=0.25, batch_size=4)
    plain = Segmenter(open_model(path_pixelwise, "cpu", 1), config).segment(image, return_probs=True)
    bound_model = open_model(path_pixelwise, "cpu", 1, io_binding=True)
    for fixed in (False, True):
        bound = Segmenter(bound_model, TilingConfig(tile=32, overlap=0.25, batch_size=4, fixed_batch=fixed)
                          ).segment(image, return_probs=True)
        np.testing.assert_array_equal(bound.labels, plain.labels)
        np.testing.assert_array_equal(bound.probs, plain.probs)
        np.testing.assert_array_equal(bound.counts, plain.counts)


def test_each_thread_has_its_own_buffers(path_pixelwise):
    model = open_model(path_pixelwise, "cpu", 1, io_binding=True)
    inputs = batches(6, [(2, 3, 16, 16)] * 8)
    expected = [model.session.run(None, {"image": b})[0] for b in inputs]
    errors = []

    def work(offset):
        try:
            for _ in range(20):
                for index in range(offset, len(inputs), 2):
                    got = model.predict_view(inputs[index])
                    if not np.array_equal(got, expected[index]):
                        errors.append(index)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
