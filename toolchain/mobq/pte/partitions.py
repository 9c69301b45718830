"""Two shims that keep XNNPACK's general partitioner linear in depth.

With extended ops on, XNNPACK's partitioner cuts every decoder layer into ~11 partitions
(norms, rope, residual adds, the gated MLP's elementwise ops) between the pre-lowered linears
and the custom SDPA/KV-cache ops. ExecuTorch 1.5.1's `to_backend` then pays, per partition:

- `XnnpackBackend.preprocess` runs `XNNPACKPassManager(...).transform()`: 17 passes, each a
  re-trace, ~0.45 s for a partition of a dozen nodes (measured: 58 of 191 s at 8 tiny layers).
  The layers' partitions are the same graph with different weights, so `reused_transforms`
  runs the passes once per distinct partition graph and serializes each partition from that
  result with its own tensors and debug handles (the bytes are XNNPACK's own: tests compare
  them with stock lowering);
- `create_submodule_from_nodes` calls `legalize_graph` on the whole model after cutting out each
  partition: a full (non-stable) topological re-sort, O(partitions x nodes), 16 of 191 s at 8
  tiny layers and quadratic beyond. `sorted_only_when_needed` keeps the graph as it is when it is
  already in topological order, which it almost always is, and re-sorts it otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

_CONSTANT_KINDS = ("PARAMETER", "BUFFER", "CONSTANT_TENSOR")


def _constants(program: Any) -> list[tuple[str, str, torch.Tensor]]:
    """(container, key, tensor) of each lifted constant, in the program's input order."""
    found = []
    for spec in program.graph_signature.input_specs:
        if spec.kind.name not in _CONSTANT_KINDS or spec.target is None:
            continue
        if spec.target in program.state_dict:
            found.append(("state_dict", spec.target, program.state_dict[spec.target]))
        else:
            found.append(("constants", spec.target, program.constants[spec.target]))
    return found


def _view(tensor: torch.Tensor) -> tuple[Any, ...]:
    return (
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


def _value(val: Any) -> Any:
    if isinstance(val, torch.Tensor):
        return ("T", tuple(str(d) for d in val.shape), str(val.dtype))
    if isinstance(val, list | tuple):
        return tuple(_value(v) for v in val)
    return repr(val) if isinstance(val, torch.SymInt | torch.SymFloat | int | float) else None


def _argument(arg: Any, index: dict[torch.fx.Node, int]) -> Any:
    if isinstance(arg, torch.fx.Node):
        return ("node", index[arg])
    if isinstance(arg, list | tuple):
        return tuple(_argument(a, index) for a in arg)
    if isinstance(arg, dict):
        return tuple(sorted((k, _argument(v, index)) for k, v in arg.items()))
    return repr(arg)


def _sources(stack: Any, names: dict[str, int]) -> Any:
    """source_fn_stack with the layer-specific names numbered by first appearance."""
    if not stack:
        return ()
    return tuple((names.setdefault(name, len(names)), str(fn)) for name, fn in stack)


def graph_signature(program: Any) -> tuple[Any, ...]:
    """Everything XNNPACK's passes and serializer read, except names, tensor data and handles.

    Two partitions with the same signature are the same graph over different weights: same
    ops, wiring, shapes, dtypes, source-module grouping, custom metadata and input kinds.
    """
    index: dict[torch.fx.Node, int] = {}
    names: dict[str, int] = {}
    rows: list[Any] = []
    for position, node in enumerate(program.graph.nodes):
        index[node] = position
        rows.append(
            (
                node.op,
                "" if node.op == "placeholder" else str(node.target),
                _argument(node.args, index),
                _argument(node.kwargs, index),
                _value(node.meta.get("val")),
                _sources(node.meta.get("source_fn_stack"), names),
                repr(node.meta.get("custom")),
            )
        )
    specs = tuple(spec.kind.name for spec in program.graph_signature.input_specs)
    outputs = tuple(spec.kind.name for spec in program.graph_signature.output_specs)
    constants = tuple(
        (where, tuple(t.shape), tuple(t.stride()), t.dtype) for where, _, t in _constants(program)
    )
    return tuple(rows), specs, outputs, constants


def _debug_handles(program: Any) -> list[Any]:
    return [node.meta.get("debug_handle") for node in program.graph.nodes]


@dataclass
class _Reusable:
    """One partition graph's pass-manager result and where each of its tensors came from."""

    transformed: Any
    slots: list[tuple[str, str, int, bool]]  # container, key, source constant index, Parameter?
    handle_nodes: list[tuple[torch.fx.Node, int]]  # node of `transformed`, source node position

    @classmethod
    def capture(cls, source: Any, transformed: Any) -> _Reusable | None:
        """None when the passes made something a swap could not redo (a folded constant)."""
        by_view = {_view(t): i for i, (_, _, t) in enumerate(_constants(source))}
        slots = []
        for where, key, tensor in _constants(transformed):
            position = by_view.get(_view(tensor))
            if position is None:
                return None
            slots.append((where, key, position, isinstance(tensor, torch.nn.Parameter)))
        by_handle: dict[Any, int] = {}
        for position, handle in enumerate(_debug_handles(source)):
            if handle is not None:
                by_handle.setdefault(handle, position)
        handle_nodes = []
        for node in transformed.graph.nodes:
            handle = node.meta.get("debug_handle")
            if handle is None:
                continue
            if handle not in by_handle:
                return None  # a handle the passes made up: not reproducible from the source
            handle_nodes.append((node, by_handle[handle]))
        return cls(transformed, slots, handle_nodes)

    def holding(self, source: Any) -> Any:
        """The transformed program with `source`'s tensors and debug handles swapped in."""
        constants = [tensor for _, _, tensor in _constants(source)]
        for where, key, position, parameter in self.slots:
            tensor = constants[position]
            if parameter and not isinstance(tensor, torch.nn.Parameter):
                tensor = torch.nn.Parameter(tensor, requires_grad=False)
            getattr(self.transformed, where)[key] = tensor
        handles = _debug_handles(source)
        for node, position in self.handle_nodes:
            node.meta["debug_handle"] = handles[position]
        return self.transformed

    def release(self) -> None:
        """Drop the last partition's tensors (the template must not keep weights alive)."""
        for where, key, _, parameter in self.slots:
            container = getattr(self.transformed, where)
            value = container[key]
            stand_in = torch.zeros((), dtype=value.dtype).expand(value.shape)
            container[key] = (
                torch.nn.Parameter(stand_in, requires_grad=False) if parameter else stand_in
            )


@contextlib.contextmanager
def reused_transforms(stats: dict[str, int] | None = None) -> Iterator[None]:
    """XNNPACK's pass manager run once per distinct partition graph (see the module doc).

    Patches `xnnpack_preprocess.XNNPACKPassManager` (executorch/backends/xnnpack/
    xnnpack_preprocess.py, 1.5.1 and 1.2.0), whose `transform()` result `preprocess` serializes
    at once; the next partition is preprocessed only after that, so one cached program can
    serve them in turn. `stats` counts hits and misses.
    """
    from executorch.backends.xnnpack import xnnpack_preprocess

    stock = xnnpack_preprocess.XNNPACKPassManager
    cache: dict[Any, _Reusable | None] = {}
    counts = stats if stats is not None else {}
    counts.setdefault("reused", 0)
    counts.setdefault("transformed", 0)

    class Reusing(stock):  # type: ignore[misc, valid-type]
        def transform(self) -> Any:
            source = self.exported_program
            key = (graph_signature(source), tuple(self.passes))
            if cache.get(key) is not None:
                counts["reused"] += 1
                return cache[key].holding(source)  # type: ignore[union-attr]
            counts["transformed"] += 1
            transformed = super().transform()
            if key not in cache:
                cache[key] = _Reusable.capture(source, transformed)
            return transformed

    xnnpack_preprocess.XNNPACKPassManager = Reusing  # type: ignore[misc]
    try:
        yield
    finally:
        xnnpack_preprocess.XNNPACKPassManager = stock  # type: ignore[misc]
        for reusable in cache.values():
            if reusable is not None:
                reusable.release()
        cache.clear()


def in_topological_order(graph: torch.fx.Graph) -> bool:
    seen: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if any(arg not in seen for arg in node.all_input_nodes):
            return False
        seen.add(node)
    return True


def stable_topological_order(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    """The graph's nodes in their own order, except that a node comes after all its inputs.

    A node whose inputs are not all placed yet waits; it is placed as soon as its last input
    is, before anything that came after it. Nodes already in order keep their places.
    """
    position = {node: i for i, node in enumerate(graph.nodes)}
    placed: set[torch.fx.Node] = set()
    waiting: dict[torch.fx.Node, int] = {}
    waiters: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    order: list[torch.fx.Node] = []

    def place(node: torch.fx.Node) -> None:
        ready = [node]
        while ready:
            ready.sort(key=position.__getitem__, reverse=True)
            current = ready.pop()
            order.append(current)
            placed.add(current)
            for waiter in waiters.pop(current, []):
                waiting[waiter] -= 1
                if waiting[waiter] == 0:
                    del waiting[waiter]
                    ready.append(waiter)

    for node in graph.nodes:
        missing = {arg for arg in node.all_input_nodes if arg not in placed}
        if not missing:
            place(node)
            continue
        waiting[node] = len(missing)
        for arg in missing:
            waiters.setdefault(arg, []).append(node)
    if waiting:
        raise ValueError("the graph has a cycle: no topological order exists")
    return order


def reorder(graph: torch.fx.Graph, order: list[torch.fx.Node]) -> None:
    """Relink the graph's nodes into `order`, moving only those out of place."""
    previous = order[0]
    for node in order[1:]:
        if node.prev is not previous:
            previous.append(node)
        previous = node


@contextlib.contextmanager
def sorted_only_when_needed() -> Iterator[None]:
    """`create_submodule_from_nodes` repairs the graph's order in place, only where a cut broke it.

    Patches the `legalize_graph` that executorch/exir/lowered_backend_module.py imports from
    torch.fx.passes.tools_common (1.5.1 and 1.2.0): after every partition it rebuilds the
    whole graph in a new, non-stable topological order (a copy of every node, then a
    recompile). Here an order that is already topological is kept, and a broken one is
    repaired by moving only the nodes that read a partition's output before it is computed
    (the program computes the same; only ExecuTorch's instruction order may differ).
    """
    from executorch.exir import lowered_backend_module

    stock = lowered_backend_module.legalize_graph

    def legalize_if_needed(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
        if not in_topological_order(gm.graph):
            reorder(gm.graph, stable_topological_order(gm.graph))
        return gm

    lowered_backend_module.legalize_graph = legalize_if_needed
    try:
        yield
    finally:
        lowered_backend_module.legalize_graph = stock


@contextlib.contextmanager
def no_needless_preservation() -> Iterator[None]:
    """Two whole-graph decompositions fewer when no op needs XNNPACK's check to be kept.

    `_gen_edge_manager_for_partitioners` (executorch/exir/program/_program.py, 1.5.1) keeps
    the ops a partitioner may take whole (aten.linear, SDPA, upsample, ...) from decomposition.
    For a partitioner with a per-node check (XNNPACK's) it takes the EDGE_DO_NOT_DECOMP path:
    decompose, swap the kept ops for placeholders, decompose again, swap back: two re-traces of
    the whole model. When the graph holds none of those ops (every quantized linear already
    delegated, SDPA already the custom op) there is nothing to check, and its plain path,
    which keeps them by leaving them out of the table, computes the same program (the .pte is
    byte-identical: tests/test_lowering.py) with one decomposition or none.
    """
    from executorch.exir.graph_module import contains_any_call_fn_target_op
    from executorch.exir.program import _program

    stock = _program._can_skip_using_EDGE_DO_NOT_DECOMP

    def can_skip(partitioner: Any, program: Any) -> bool:
        if stock(partitioner, program):
            return True
        kept, _ = partitioner.ops_to_not_decompose(program)
        return not contains_any_call_fn_target_op(program.graph_module, kept)

    _program._can_skip_using_EDGE_DO_NOT_DECOMP = can_skip
    try:
        yield
    finally:
        _program._can_skip_using_EDGE_DO_NOT_DECOMP = stock
