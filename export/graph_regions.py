"""Find the parts of the fused graph that must stay in float32 in a reduced-precision variant.

Two regions: the preprocessing (uint8 -> normalised float, everything before the
first convolution) and the tail (each member's logit head, its softmax and the
weighted average). Both are a handful of cheap element-wise ops, and both carry numbers
whose precision matters more than their cost: the tail's output is the
probability map the runtime blends across tiles.
"""
from __future__ import annotations

from collections import defaultdict

import onnx

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)
    return users


def _downstream(graph: onnx.GraphProto, starts: list[onnx.NodeProto]) -> set[str]:
    """Names of the nodes in `starts` and of every node fed, directly or not, by them."""
    users = _consumers(graph)
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for output in node.output:
            stack.extend(users.get(output, ()))
    return seen


def _logit_heads(graph: onnx.GraphProto, softmaxes: list[onnx.NodeProto]) -> set[str]:
    """Nodes between each Softmax and the convolution(s) that produce its logits, those included.

    Quantising the logits to 8 bits would move argmax wherever two classes are
    within one quantisation step; the 1x1 head convolutions (features -> 4) and
    the logit upsampling are a sliver of the compute, so they stay float.
    """
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    stack = [producer[name] for node in softmaxes for name in node.input if name in producer]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type not in COMPUTE_OPS:
            stack.extend(producer[name] for name in node.input if name in producer)
    return seen


def _ensure_names(graph: onnx.GraphProto) -> None:
    """Block and exclude lists work by node name, so give unnamed nodes one."""
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"


def float_region(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes to keep in float32: preprocessing, logit heads, softmax and average."""
    graph = model.graph
    _ensure_names(graph)
    compute = _downstream(graph, [n for n in graph.node if n.op_type in COMPUTE_OPS])
    softmaxes = [n for n in graph.node if n.op_type == "Softmax"]
    tail = _downstream(graph, softmaxes) | _logit_heads(graph, softmaxes)
    return [n.name for n in graph.node if n.name not in compute or n.name in tail]
