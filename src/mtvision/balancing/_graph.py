"""What the streamed Gramian path reads off the autograd graph: which shared weights a
convolution node's pre-hook can take, and where the image-side stems end.

Both are found on the graph of the losses, not on the modules, so that
:mod:`~mtvision.balancing.backward` keeps needing only the parameters (any architecture,
any trunk). One traversal records every node's parents and every leaf's users.

**Stems.** A convolution applied to the image (its input needs no gradient) starts a stem:
the chain of single-parent nodes above it (normalisation, activation, pooling), up to the
first fork or the next convolution. Its activations are the largest of the network and its
parameters among the fewest (resnet18: 9.5k of 11.7M at twice the stride-4 resolution). The
task-batched backward would carry ``k`` copies of their gradients (and legacy vmap has no
batching rule for ``native_batch_norm_backward``: it loops and stacks, a second copy), so the
streamed path stops the batched pass at the stem's top edge and runs the stem ``k`` times,
one task at a time, from that edge's ``[k, ...]`` gradient.

**Heads apart.** Started from the losses, the batched pass would run every head backward
``k`` times, ``k − 1`` of them on zero rows (the one-hot ``grad_outputs``): on the resnet18
benchmark that made the heads' upsampling and normalisation backward ~8× their plain cost.
Where the shared features the heads read cut every path from the losses to the shared
parameters (:func:`cuts_at`: true of hard sharing, whose heads read the neck's pyramid),
each task's head runs once, to its gradient at the features, and the batched pass starts
there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.autograd.graph import GradientEdge

__all__ = ["Graph", "Stem", "convolution_nodes", "cuts_at", "stems"]


@dataclass
class Graph:
    """Parents of every node, users of every leaf (by ``id`` of its tensor), from the root."""

    root: Any
    parents: dict[Any, list[tuple[Any, int]]] = field(default_factory=dict)  # node -> (parent, output index)
    users: dict[int, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, root: Tensor) -> Graph:
        graph, seen, stack = cls(root.grad_fn), set(), [root.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            for child, index in node.next_functions:
                if child is None:
                    continue
                graph.parents.setdefault(child, []).append((node, index))
                variable = getattr(child, "variable", None)
                if variable is not None:
                    graph.users.setdefault(id(variable), []).append(node)
                stack.append(child)
        return graph


@dataclass
class Stem:
    """The batched pass stops at ``edge``; ``parameters`` (the shared ones below it) get their
    gradient rows from one pass per task."""

    edge: GradientEdge
    parameters: list[Tensor]


def convolution_nodes(graph: Graph, shared: list[Tensor], exclude: set[int]) -> dict[int, Any]:
    """``id(weight) -> its ConvolutionBackward node`` for the shared weights (not in ``exclude``)
    that a pre-hook can take: used by one node only, an ungrouped, non-transposed convolution
    whose input needs a gradient (so the node runs although its weight is not requested)."""
    out = {}
    for weight in shared:
        nodes = graph.users.get(id(weight), [])
        if id(weight) not in exclude and len(nodes) == 1 and _is_weight_of(nodes[0], weight):
            out[id(weight)] = nodes[0]
    return out


def stems(graph: Graph, shared: list[Tensor]) -> list[Stem]:
    """Every stem of the graph (see the module docstring) with the shared parameters below it.
    A stem is kept only where every path from the losses to its nodes passes through its top
    (then the gradient at the top edge is all its parameters receive)."""
    out = []
    for node in list(graph.parents):
        if _is_convolution(node) and node.next_functions[0][0] is None:
            top, index = _climb(graph, node)
            below = _below(top)
            closed = all(parent in below for child in below - {top} for parent, _ in graph.parents.get(child, []))
            leaves = _variables(below)
            parameters = [p for p in shared if id(p) in leaves]
            if closed and parameters:
                out.append(Stem(GradientEdge(top, index), parameters))
    return out


def cuts_at(root: Tensor, features: list[Tensor], shared: list[Tensor]) -> bool:
    """Whether every path from ``root`` to a shared parameter passes through ``features``, and no
    feature is computed from another (its gradient would then count twice)."""
    nodes = {f.grad_fn for f in features}
    if None in nodes:
        return False
    if _variables(_below(root.grad_fn, stop=nodes)) & {id(p) for p in shared}:
        return False
    return not any(len(_below(node) & nodes) > 1 for node in nodes)  # a node below itself and another feature


def _climb(graph: Graph, node: Any) -> tuple[Any, int]:
    """The highest node of the single-parent chain above ``node`` below the next convolution."""
    top = node
    while len(graph.parents.get(top, [])) == 1:
        parent, _ = graph.parents[top][0]
        if parent is graph.root or _is_convolution(parent):
            break
        top = parent
    return top, graph.parents[top][0][1]


def _below(node: Any, stop: set[Any] | None = None) -> set[Any]:
    """Every node reachable from ``node``, itself included, not going past the ``stop`` nodes."""
    seen, stack, stop = set(), [node], stop or set()
    while stack:
        current = stack.pop()
        if current is not None and current not in seen and current not in stop:
            seen.add(current)
            stack.extend(child for child, _ in current.next_functions)
    return seen


def _variables(nodes: set[Any]) -> set[int]:
    """``id`` of the leaf tensors among ``nodes``."""
    return {id(node.variable) for node in nodes if getattr(node, "variable", None) is not None}


def _is_convolution(node: Any) -> bool:
    return type(node).__name__ == "ConvolutionBackward0"


def _is_weight_of(node: Any, weight: Tensor) -> bool:
    return (_is_convolution(node) and node.next_functions[0][0] is not None
            and getattr(node.next_functions[1][0], "variable", None) is weight
            and node._saved_groups == 1 and not node._saved_transposed)
