"""XNNPACK's partitioner, grouping nodes in near-linear time and memory instead of cubic.

XNNPACK's `XnnpackPartitioner` groups the supported nodes with ExecuTorch's
`GroupBasedPartitioner` (executorch/exir/backend/canonical_partitioners/group_partitioner.py,
1.5.1). Its greedy merge asks, for every pair of partitions, whether fusing them would make a
cycle, and answers with `_DependencyViewer`: a Python set of every node's transitive users,
built up front. That is O(nodes²) memory (~600 MB for Qwen3-0.6B's 28 layers: the export
child's peak) and O(pairs x nodes) time (2.5 s at 8 tiny layers, 19.7 s at 16: cubic in depth).

`linear_grouping` answers the same question with bitmasks. Fusing a node set C makes a cycle
exactly when some node u outside C is both reachable from C and able to reach C (a path
C -> u -> C through the fused node). With every node's descendants and ancestors as an
integer bitmask over graph positions (N² bits: 3 MB at 5,000 nodes), and each partition's
(members, descendants, ancestors) kept as the OR of its nodes', the check for a pair is three
big-integer ANDs/ORs. The graph does not change while partitions are proposed, so the answer
is the stock one for every pair, and the merges, partitions and the .pte are the same
(tests/test_grouping.py compares the partitions on random graphs, tests/test_lowering.py
the .pte bytes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class Reachability:
    """Each node's descendants and ancestors as bitmasks over its position in the graph."""

    def __init__(self, graph_module: torch.fx.GraphModule) -> None:
        nodes = list(graph_module.graph.nodes)
        self.bit = {node: 1 << i for i, node in enumerate(nodes)}
        self.descendants: dict[torch.fx.Node, int] = {}
        for node in reversed(nodes):
            mask = 0
            for user in node.users:
                if user not in self.descendants:
                    raise ValueError(f"{user} comes before its input {node}: not in order")
                mask |= self.bit[user] | self.descendants[user]
            self.descendants[node] = mask
        self.ancestors: dict[torch.fx.Node, int] = {}
        for node in nodes:
            mask = 0
            for source in node.all_input_nodes:
                mask |= self.bit[source] | self.ancestors[source]
            self.ancestors[node] = mask

    def of(self, nodes: Any) -> tuple[int, int, int]:
        """(members, descendants, ancestors) of a node set."""
        members = reach_down = reach_up = 0
        for node in nodes:
            members |= self.bit[node]
            reach_down |= self.descendants[node]
            reach_up |= self.ancestors[node]
        return members, reach_down, reach_up


def fusing_makes_cycle(first: tuple[int, int, int], second: tuple[int, int, int]) -> bool:
    """Whether one node outside both sets lies on a path from them back to them."""
    members = first[0] | second[0]
    outside_on_a_loop = (first[1] | second[1]) & (first[2] | second[2]) & ~members
    return outside_on_a_loop != 0


@contextlib.contextmanager
def linear_grouping() -> Iterator[None]:
    """GroupBasedPartitioner's cycle check by bitmasks (see the module doc); no-op if absent."""
    from executorch.exir.backend.canonical_partitioners import group_partitioner as module

    stock_class = getattr(module, "GroupBasedPartitioner", None)
    needed = ("_can_merge_partitions", "_perform_partition_merge")
    if stock_class is None or not all(hasattr(stock_class, name) for name in needed):
        yield
        return
    stock_viewer = module._DependencyViewer
    stock_can_merge = stock_class._can_merge_partitions
    stock_merge = stock_class._perform_partition_merge

    def can_merge(self: Any, p1: int, p2: int, partitions_by_id: dict[int, Any]) -> bool:
        if not _reachable(self):
            return stock_can_merge(self, p1, p2, partitions_by_id)
        return not fusing_makes_cycle(
            _summary(self, p1, partitions_by_id), _summary(self, p2, partitions_by_id)
        )

    def perform_merge(self: Any, p1: int, p2: int, partitions_by_id: dict[int, Any], *rest):
        if not _reachable(self):
            return stock_merge(self, p1, p2, partitions_by_id, *rest)
        merged = _merged(_summary(self, p1, partitions_by_id), _summary(self, p2, partitions_by_id))
        stock_merge(self, p1, p2, partitions_by_id, *rest)
        self._mobq_summaries[p1] = (len(partitions_by_id[p1].nodes), merged)
        self._mobq_summaries.pop(p2, None)

    def _reachable(partitioner: Any) -> bool:
        """Bitmasks unless the graph is out of order (then the stock viewer, built late)."""
        if not hasattr(partitioner, "_mobq_reach"):
            partitioner._mobq_summaries = {}
            try:
                partitioner._mobq_reach = Reachability(partitioner.graph_module)
            except ValueError:
                partitioner._mobq_reach = None
                partitioner.dependency_viewer = stock_viewer(partitioner.graph_module)
        return partitioner._mobq_reach is not None

    module._DependencyViewer = _Unused
    stock_class._can_merge_partitions = can_merge
    stock_class._perform_partition_merge = perform_merge
    try:
        yield
    finally:
        module._DependencyViewer = stock_viewer
        stock_class._can_merge_partitions = stock_can_merge
        stock_class._perform_partition_merge = stock_merge


class _Unused:
    """Stands in for `_DependencyViewer` (its transitive sets are what costs O(nodes²))."""

    def __init__(self, graph_module: torch.fx.GraphModule) -> None:
        self.graph_module = graph_module


def _summary(partitioner: Any, partition_id: int, partitions_by_id: dict[int, Any]):
    """A partition's bitmasks, kept per partition and recomputed if its nodes changed."""
    nodes = partitions_by_id[partition_id].nodes
    known = partitioner._mobq_summaries.get(partition_id)
    if known is None or known[0] != len(nodes):
        known = (len(nodes), partitioner._mobq_reach.of(nodes))
        partitioner._mobq_summaries[partition_id] = known
    return known[1]


def _merged(first: tuple[int, int, int], second: tuple[int, int, int]) -> tuple[int, int, int]:
    return first[0] | second[0], first[1] | second[1], first[2] | second[2]
