"""Edge rewrites that let XNNPACK take what the prefill's dynamic length keeps from it.

The llama program's token dimension is symbolic, and ExecuTorch 1.5.1's XNNPACK partitioner
refuses several ops on such tensors: `mean.dim` unless it is a 4-D mean over dims [2, 3]
(global average pooling), `unsqueeze_copy` and `slice_copy` on any dynamic tensor, `cat` of
one tensor. Each refused op runs as a portable kernel and cuts the delegate around it in two:
at Qwen3-4B that was ~10 extra delegate calls and portable ops per layer per token
(bench/decode_profile.py). These passes rewrite the ops into ones XNNPACK takes:

- `mean(x, [-1], keepdim)`: view to [-1, 1, 1, D], average over [2, 3], view back (RMSNorm);
- `unsqueeze_copy`: a `view_copy` with the one dynamic size inferred (-1);
- `alias_copy(x)` and `cat([x])`: x itself (they copy, nothing reads them in place);
- a partition of nothing but `view_copy` is left out: outside XNNPACK it is a free `et_view`.

Only the mean may change values (its summation order), as much as any other kernel would.
Rope's halves stay portable: a constant signed-permutation linear would take them, bit for
bit, but its fp32 GEMM cost what it saved (5 us a call at Qwen3-0.6B).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.fx import GraphModule, Node
from torch.fx.passes.infra.pass_base import PassResult


def _edge(name: str) -> Any:
    from executorch.exir.dialects._ops import ops as exir_ops

    packet, overload = name.split(".")
    return getattr(getattr(exir_ops.edge.aten, packet), overload)


def _is(node: Node, name: str) -> bool:
    return node.op == "call_function" and node.target == _edge(name)


def _shape(node: Node) -> Sequence[Any]:
    return node.meta["val"].shape


def _with_one_inferred(shape: Sequence[Any]) -> list[int] | None:
    """`shape` as view_copy sizes XNNPACK takes: ints, the one symbolic size as -1."""
    symbolic = [i for i, size in enumerate(shape) if not isinstance(size, int)]
    if len(symbolic) > 1:
        return None
    return [-1 if i in symbolic else int(size) for i, size in enumerate(shape)]


def _insert(graph: torch.fx.Graph, like: Node, name: str, *args: Any) -> Node:
    """A new edge node before `like`, with `like`'s metadata and its own fake value."""
    op = _edge(name)
    with graph.inserting_before(like):
        node = graph.call_function(op, args)
    node.meta = dict(like.meta)
    fake_args = [a.meta["val"] if isinstance(a, Node) else a for a in args]
    node.meta["val"] = op._op(*fake_args)
    return node


def _mean_as_pool(graph: torch.fx.Graph, node: Node) -> bool:
    """mean(x, [-1], keepdim=True) -> view [-1, 1, 1, D] -> mean([2, 3]) -> view back."""
    if not _is(node, "mean.dim") or node.kwargs.get("dtype") is not None:
        return False
    source = node.args[0]
    dims = node.args[1] if len(node.args) > 1 else None
    keepdim = len(node.args) > 2 and bool(node.args[2])
    shape = _shape(source)
    if not keepdim or dims is None or len(dims) != 1 or dims[0] not in (-1, len(shape) - 1):
        return False
    width = shape[-1]
    back = _with_one_inferred(_shape(node))
    if not isinstance(width, int) or back is None or len(shape) < 2:
        return False
    rows = _insert(graph, node, "view_copy.default", source, [-1, 1, 1, width])
    pooled = _insert(graph, node, "mean.dim", rows, [2, 3], True)
    node.replace_all_uses_with(_insert(graph, node, "view_copy.default", pooled, back))
    graph.erase_node(node)
    return True


def _unsqueeze_as_view(graph: torch.fx.Graph, node: Node) -> bool:
    if not _is(node, "unsqueeze_copy.default"):
        return False
    sizes = _with_one_inferred(_shape(node))
    if sizes is None:
        return False
    node.replace_all_uses_with(_insert(graph, node, "view_copy.default", node.args[0], sizes))
    graph.erase_node(node)
    return True


def _identity_copy(graph: torch.fx.Graph, node: Node) -> bool:
    """alias_copy(x) and cat([x], d) are x: drop them where x is computed, not an input."""
    if _is(node, "alias_copy.default"):
        source = node.args[0]
    elif _is(node, "cat.default") and len(node.args[0]) == 1:
        source = node.args[0][0]
    else:
        return False
    if not isinstance(source, Node) or source.op != "call_function":
        return False
    node.replace_all_uses_with(source)
    graph.erase_node(node)
    return True


def delegable_ops(graph_module: GraphModule) -> PassResult:
    """The graph-only rewrites (no new constants): mean, unsqueeze, alias and one-tensor cat."""
    graph = graph_module.graph
    modified = False
    for node in list(graph.nodes):
        for rewrite in (_mean_as_pool, _unsqueeze_as_view, _identity_copy):
            if rewrite(graph, node):
                modified = True
                break
    if modified:
        graph.lint()
        graph_module.recompile()
    return PassResult(graph_module, modified)


def without_view_only_partitions(partitioner: Any) -> Any:
    """`partitioner`, minus partitions that are nothing but view_copy.

    Outside a delegate a view_copy is ExecuTorch's `et_view`: no copy, no call. XNNPACK takes
    a lone one (the attention output's reshape before wo, once per layer) as a delegate of its
    own, a copy plus a delegate call per layer per token.
    """
    stock = partitioner.partition

    def partition(program: Any) -> Any:
        result = stock(program)
        _untag_view_only(program.graph_module.graph, result.partition_tags)
        return result

    partitioner.partition = partition
    return partitioner


def _untag_view_only(graph: torch.fx.Graph, partition_tags: dict[str, Any]) -> None:
    members: dict[str, list[Node]] = {}
    for node in graph.nodes:
        tag = node.meta.get("delegation_tag")
        if tag is not None:
            members.setdefault(tag, []).append(node)
    for tag, nodes in members.items():
        ops = [n for n in nodes if n.op == "call_function"]
        if ops and all(_is(n, "view_copy.default") for n in ops):
            for node in nodes:
                del node.meta["delegation_tag"]
            partition_tags.pop(tag, None)
