"""Run a one-image ONNX graph on every image of a batch, inside another graph (an ONNX ``Loop``).

The detector is exported for one image (the only trace torchvision's R-CNN gets right, see
:mod:`mtvision.engine.onnx_graph`); this module splices it into the batch graph as the body of
a ``Loop`` whose trip count is the batch size. Each iteration gathers image ``i``'s pyramid,
runs the detector and appends its rows to loop-carried tensors, so the outputs are flat
(``[N_total, ...]``, every image's detections one after the other) with a ``batch_index``
output saying which image each row belongs to — the layout of ``torchvision.ops.roi_align``'s
boxes and of most deployed detectors.

Example:
    >>> from onnx import helper, TensorProto
    >>> body = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0)], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])])
    >>> one = helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)])
    >>> outer = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["feat"])], "m",
    ...     [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 2])],
    ...     [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["b", 2])]),
    ...     opset_imports=[helper.make_opsetid("", 17)])
    >>> merged = loop_per_image(outer, one, {"x": "feat"}, {"s": (TensorProto.FLOAT, [])}, "t.")
    >>> [o.name for o in merged.graph.output]
    ['t.batch_index', 't.s']
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

__all__ = ["loop_per_image"]

Signature = tuple[int, list[int]]  # ONNX element type, trailing shape (after the per-image row axis)


def loop_per_image(outer: onnx.ModelProto, one_image: onnx.ModelProto, feeds: dict[str, str],
                   outputs: dict[str, Signature], prefix: str) -> onnx.ModelProto:
    """``outer`` with ``one_image`` run once per image of the batch; returns a new model.

    ``feeds`` maps each input of ``one_image`` (``[1, ...]``) to the ``outer`` output that holds
    it for the whole batch (``[B, ...]``); those outputs are removed from ``outer``. ``outputs``
    gives each ``one_image`` output's type and trailing shape (its rows are concatenated), and
    ``prefix`` names everything added (``<prefix>batch_index``, ``<prefix><output>``).
    """
    one_image = compose.add_prefix(one_image, prefix + "/")  # unique node, value and initializer names
    renamed = {prefix + "/" + k: v for k, v in feeds.items()}
    graph = onnx.GraphProto()
    graph.CopyFrom(outer.graph)
    graph.initializer.extend(one_image.graph.initializer)  # outer scope: visible inside the body
    names = ["batch_index", *outputs]
    signatures = {"batch_index": (TensorProto.INT64, []), **outputs}
    graph.node.extend(_empty_rows(prefix, signatures))
    first = next(iter(renamed.values()))
    graph.node.extend([
        helper.make_node("Shape", [first], [f"{prefix}/batch_shape"]),
        helper.make_node("Constant", [], [f"{prefix}/zero"], value=helper.make_tensor("z", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", [f"{prefix}/batch_shape", f"{prefix}/zero"], [f"{prefix}/batch_size"], axis=0),
        helper.make_node("Constant", [], [f"{prefix}/true"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
        helper.make_node("Loop", [f"{prefix}/batch_size", f"{prefix}/true", *(f"{prefix}/empty.{n}" for n in names)],
                         [prefix + n for n in names], body=_body(one_image.graph, renamed, signatures, prefix)),
    ])
    kept = [o for o in graph.output if o.name not in set(feeds.values())]
    del graph.output[:]
    graph.output.extend(kept + [helper.make_tensor_value_info(prefix + n, signatures[n][0], ["rows", *signatures[n][1]])
                                for n in names])
    model = helper.make_model(graph, opset_imports=outer.opset_import, ir_version=outer.ir_version)
    model.producer_name, model.producer_version = outer.producer_name, outer.producer_version
    return model


def _empty_rows(prefix: str, signatures: dict[str, Signature]) -> list[onnx.NodeProto]:
    """One ``[0, ...]`` constant per output: the loop-carried values before the first image."""
    nodes = []
    for name, (dtype, trailing) in signatures.items():
        empty = np.zeros([0, *trailing], dtype=helper.tensor_dtype_to_np_dtype(dtype))
        nodes.append(helper.make_node("Constant", [], [f"{prefix}/empty.{name}"],
                                      value=numpy_helper.from_array(empty, f"{prefix}/empty.{name}.value")))
    return nodes


def _body(one: onnx.GraphProto, feeds: dict[str, str], signatures: dict[str, Signature],
          prefix: str) -> onnx.GraphProto:
    """Loop body: gather image ``i``'s inputs, run ``one``, append its rows to the carried outputs.

    Only opset-11 operators are added (Reshape, Gather, Shape, Expand, Concat), so the loop
    works at any opset the exporter does."""
    p, names = prefix + "/loop.", list(signatures)
    nodes = [helper.make_node("Constant", [], [p + "one"], value=helper.make_tensor("o", TensorProto.INT64, [1], [1])),
             helper.make_node("Reshape", [p + "i", p + "one"], [p + "index"])]  # [i]: Gather keeps the axis
    nodes += [helper.make_node("Gather", [whole, p + "index"], [inner], axis=0) for inner, whole in feeds.items()]
    nodes += list(one.node)
    produced = {o.name.removeprefix(prefix + "/"): o.name for o in one.output}
    nodes += [helper.make_node("Shape", [produced[names[1]]], [p + "shape"]),
              helper.make_node("Constant", [], [p + "index0"], value=helper.make_tensor("z", TensorProto.INT64, [1], [0])),
              helper.make_node("Gather", [p + "shape", p + "index0"], [p + "rows"], axis=0),
              helper.make_node("Expand", [p + "i", p + "rows"], [p + "new.batch_index"])]
    produced["batch_index"] = p + "new.batch_index"
    nodes += [helper.make_node("Concat", [p + "acc." + n, produced[n]], [p + "out." + n], axis=0) for n in names]
    nodes.append(helper.make_node("Identity", [p + "cond"], [p + "cond.out"]))
    inputs = [helper.make_tensor_value_info(p + "i", TensorProto.INT64, []),
              helper.make_tensor_value_info(p + "cond", TensorProto.BOOL, [])]
    inputs += [helper.make_tensor_value_info(p + "acc." + n, signatures[n][0], None) for n in names]
    outputs = [helper.make_tensor_value_info(p + "cond.out", TensorProto.BOOL, [])]
    outputs += [helper.make_tensor_value_info(p + "out." + n, signatures[n][0], None) for n in names]
    return helper.make_graph(nodes, "per_image", inputs, outputs, value_info=list(one.value_info))
