"""IO binding: a session run through fixed, reused input and output buffers, one set per batch shape.

    runner = BoundRunner(session, "image", device="cuda")
    outputs = runner.run(batch)            # {"probs": array, ...}: views of this runner's host buffers

`session.run` allocates every output (on the GPU, then again on the host) and
copies the input to the device through a fresh allocation on every call. A
BoundRunner keeps, per input shape and set of outputs:

* the input buffer on the session's device (an OrtValue; the batch is copied into
  it in place: `update_inplace` on CUDA, `np.copyto` on the CPU);
* each output's buffer: host numpy arrays that onnxruntime writes into directly
  (from the GPU it copies the result there; on the CPU it computes into them), or,
  for a CUDA graph, buffers on the device whose addresses the graph replays.

Output shapes are not assumed: the first call of a shape binds the outputs to the
device and lets onnxruntime allocate them, and their shapes and types size the
fixed buffers from the second call on. So any outputs a model declares (`probs`,
and `disagreement` in contract v2) are handled alike.

Returned arrays are views of the runner's buffers, valid until its next call with
the same shape: the tiler reads each output before calling again. A runner is not
thread-safe; LoadedModel keeps one per thread (one shared, behind a lock, with a
CUDA graph, which a session captures once per graph id).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Batch shapes whose buffers are kept at once (fixed tiles: one or two in practice;
#: a short image's tile adds one). The least recently used is dropped past this.
MAX_SHAPES = 4
#: onnxruntime's run-config key naming the CUDA graph to capture or replay (-1: none).
GRAPH_ID_KEY = "gpu_graph_id"


@dataclass
class _Slot:
    binding: object
    input_value: object
    host_input: np.ndarray | None  # CPU: the numpy array the input OrtValue wraps
    host_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # written by onnxruntime
    device_outputs: dict[str, object] = field(default_factory=dict)  # CUDA graph: fixed device buffers
    graph_id: int = -1  # the CUDA graph this slot replays; -1: none
    ready: bool = False  # outputs bound to fixed buffers (after the first call)


class BoundRunner:
    """Runs `session` through IO binding with buffers reused per (batch shape, outputs)."""

    def __init__(self, session, input_name: str, *, device: str = "cpu", device_id: int = 0,
                 cuda_graph: bool = False, max_shapes: int = MAX_SHAPES):
        import onnxruntime as ort

        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {device!r}")
        if cuda_graph and device != "cuda":
            raise ValueError("CUDA graphs need the cuda device")
        self._ort = ort
        self.session = session
        self.input_name = input_name
        self.output_names = tuple(o.name for o in session.get_outputs())
        self.device = device
        self.device_id = device_id
        self.cuda_graph = cuda_graph
        self.max_shapes = max_shapes
        self._slots: OrderedDict[tuple, _Slot] = OrderedDict()
        self._graph_ids = 0  # graphs captured so far: ids 1, 2, ... (never reused: onnxruntime keeps them)

    @property
    def shapes(self) -> list[tuple]:
        """The (batch shape, outputs) keys with buffers, least recently used first."""
        return list(self._slots)

    def _new_slot(self, shape: tuple[int, ...]) -> _Slot:
        ort = self._ort
        binding = self.session.io_binding()
        if self.device == "cpu":
            host = np.empty(shape, np.uint8)
            value = ort.OrtValue.ortvalue_from_numpy(host)
        else:
            host = None
            value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.uint8, "cuda", self.device_id)
        binding.bind_ortvalue_input(self.input_name, value)
        graph_id = -1
        if self.cuda_graph and self._graph_ids < self.max_shapes:  # a bounded number of captured graphs
            self._graph_ids += 1
            graph_id = self._graph_ids
        return _Slot(binding, value, host, graph_id=graph_id)

    def _run_options(self, graph_id: int):
        if not self.cuda_graph:
            return None
        options = self._ort.RunOptions()
        options.add_run_config_entry(GRAPH_ID_KEY, str(graph_id))
        return options

    def run(self, batch: np.ndarray, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """{output name: array} for uint8 `batch`; arrays are views of buffers reused by the next call."""
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        names = self.output_names if names is None else tuple(names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise ValueError(f"the model has no output {', '.join(unknown)} (outputs: {', '.join(self.output_names)})")
        key = (batch.shape, names)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._new_slot(batch.shape)
            self._slots[key] = slot
            while len(self._slots) > self.max_shapes:
                self._slots.popitem(last=False)
        else:
            self._slots.move_to_end(key)
        if slot.host_input is not None:
            np.copyto(slot.host_input, batch)
        else:
            slot.input_value.update_inplace(batch)
        if not slot.ready:
            return self._first_run(slot, names)
        self.session.run_with_iobinding(slot.binding, self._run_options(slot.graph_id))
        if slot.device_outputs:
            return {name: value.numpy() for name, value in slot.device_outputs.items()}
        return dict(slot.host_outputs)

    def _first_run(self, slot: _Slot, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Run with onnxruntime-allocated outputs (no graph), then fix buffers of their shapes and types."""
        for name in names:
            slot.binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(slot.binding, self._run_options(-1))
        results = dict(zip(names, slot.binding.copy_outputs_to_cpu()))
        slot.binding.clear_binding_outputs()
        ort = self._ort
        for name, array in results.items():
            if slot.graph_id >= 0:  # a graph replays device addresses: outputs stay on the GPU
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), array.dtype, "cuda",
                                                                  self.device_id)
                slot.device_outputs[name] = value
            else:  # onnxruntime writes (or copies) the result straight into this host array
                host = np.empty(array.shape, array.dtype)
                slot.host_outputs[name] = host
                value = ort.OrtValue.ortvalue_from_numpy(host)
            slot.binding.bind_ortvalue_output(name, value)
        slot.ready = True
        return results
