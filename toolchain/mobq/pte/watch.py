"""Progress from inside ExecuTorch's lowering, which reports none of its own.

At full size `to_edge_transform_and_lower` and `to_executorch` take minutes. Their work is a
series of whole-graph traversals (each decomposition re-traces the graph node by node through
`torch.fx.Interpreter`, each edge pass is an Interpreter too) and then one XNNPACK `preprocess`
per partition. Both are counted here as they run: a bar per whole-graph pass (nodes done, ETA of
that pass) and one over the partitions (ETA of the lowering).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch

from mobq import progress


@contextlib.contextmanager
def graph_passes(min_nodes: int, label: str) -> Iterator[None]:
    """A progress bar for every Interpreter run over a graph of at least `min_nodes` nodes.

    Smaller graphs (a partition, a template) run unwatched: only the model's own passes count.
    """
    stock_run = torch.fx.Interpreter.run
    numbers = itertools.count(1)

    def run(self: torch.fx.Interpreter, *args: Any, **kwargs: Any) -> Any:
        nodes = len(self.graph.nodes)
        if nodes < min_nodes or "run_node" in vars(self):
            return stock_run(self, *args, **kwargs)
        with progress.task(f"{label}: graph pass {next(numbers)}", total=nodes) as advance:
            stock_run_node = self.run_node

            def run_node(node: torch.fx.Node) -> Any:
                result = stock_run_node(node)
                advance(1)
                return result

            self.run_node = run_node  # type: ignore[method-assign]
            try:
                return stock_run(self, *args, **kwargs)
            finally:
                del self.run_node

    torch.fx.Interpreter.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.fx.Interpreter.run = stock_run  # type: ignore[method-assign]


@contextlib.contextmanager
def partitions_lowered() -> Iterator[None]:
    """One bar over the partitions XNNPACK serializes, with an ETA.

    Wraps `lower_all_submodules_to_backend` (executorch/exir/backend/backend_api.py, 1.5.1),
    which receives every partition of every method before preprocessing them in turn, and
    counts `XnnpackBackend.preprocess` calls. ExecuTorch 1.2.0 lowers partition by partition
    and has no such function; there the passes' bars are all that shows.
    """
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
    from executorch.exir.backend import backend_api

    stock_lower_all = getattr(backend_api, "lower_all_submodules_to_backend", None)
    stock_preprocess = XnnpackBackend.__dict__["preprocess"]
    advance: list[Callable[[int], None]] = []

    def lower_all(backend_id: str, by_method: dict[str, list[Any]], *rest: Any) -> Any:
        total = sum(len(nodes) for nodes in by_method.values())
        with progress.task(f"lowering {total} partitions to XNNPACK", total=total) as step:
            advance.append(step)
            try:
                return stock_lower_all(backend_id, by_method, *rest)  # type: ignore[misc]
            finally:
                advance.pop()

    def preprocess(*args: Any, **kwargs: Any) -> Any:
        result = stock_preprocess.__func__(*args, **kwargs)
        if advance:
            advance[-1](1)
        return result

    if stock_lower_all is not None:
        backend_api.lower_all_submodules_to_backend = lower_all
    XnnpackBackend.preprocess = staticmethod(preprocess)  # type: ignore[method-assign]
    try:
        yield
    finally:
        XnnpackBackend.preprocess = stock_preprocess  # type: ignore[method-assign]
        if stock_lower_all is not None:
            backend_api.lower_all_submodules_to_backend = stock_lower_all
