"""XNNPACK's partitioner with mobq's bitmask cycle check proposes exactly the stock partitions.

mobq.pte.grouping replaces GroupBasedPartitioner's O(nodes²) transitive-user sets with
bitmasks. On random graphs (random wiring, random supported nodes, explicit groups, fusions
that would make a cycle), the proposed partitions must be the stock ones, node for node.
"""

from __future__ import annotations

import operator
import random

import pytest
import torch
from executorch.exir.backend.canonical_partitioners.group_partitioner import (
    GroupBasedPartitioner,
)
from torch.fx.passes.operator_support import OperatorSupportBase

from mobq.pte import grouping


class _Supported(OperatorSupportBase):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def is_node_supported(self, submodules: object, node: torch.fx.Node) -> bool:
        return node.name in self.names


def _random_graph(rng: random.Random, size: int) -> torch.fx.GraphModule:
    """A DAG of binary ops, each reading two earlier nodes (nearby ones more often)."""
    graph = torch.fx.Graph()
    nodes = [graph.placeholder("x")]
    for _ in range(size):
        near = nodes[-6:]
        left = rng.choice(near if rng.random() < 0.7 else nodes)
        right = rng.choice(nodes)
        nodes.append(graph.call_function(operator.add, (left, right)))
    graph.output(nodes[-1])
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def _proposals(module: torch.fx.GraphModule, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    compute = [n for n in module.graph.nodes if n.op == "call_function"]
    supported = {n.name for n in compute if rng.random() < 0.6}
    chosen = [n for n in compute if n.name in supported]
    groups = [chosen[i : i + 3] for i in range(0, len(chosen) // 3, 5)]  # some explicit groups
    partitioner = GroupBasedPartitioner(
        module, _Supported(supported), allows_single_node_partition=True, node_groups=groups
    )
    return sorted(sorted(node.name for node in p.nodes) for p in partitioner.propose_partitions())


@pytest.mark.parametrize("seed", range(12))
def test_bitmask_grouping_proposes_the_stock_partitions(seed: int) -> None:
    module = _random_graph(random.Random(seed), size=60 + 10 * seed)
    stock = _proposals(module, seed)
    with grouping.linear_grouping():
        ours = _proposals(module, seed)
    assert ours == stock
    assert len(stock) > 1  # some fusions were refused: the check was exercised


def test_the_cycle_check_is_a_path_out_and_back() -> None:
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(torch.relu, (x,))
    u = graph.call_function(torch.neg, (a,))  # a -> u -> b: fusing a and b makes a cycle
    b = graph.call_function(operator.add, (a, u))
    c = graph.call_function(torch.abs, (x,))  # beside the others: fuses with anything
    graph.output((b, c))
    reach = grouping.Reachability(torch.fx.GraphModule(torch.nn.Module(), graph))
    assert grouping.fusing_makes_cycle(reach.of([a]), reach.of([b]))
    assert not grouping.fusing_makes_cycle(reach.of([a, u]), reach.of([b]))
    assert not grouping.fusing_makes_cycle(reach.of([a]), reach.of([c]))
    assert not grouping.fusing_makes_cycle(reach.of([b]), reach.of([c]))


def test_an_out_of_order_graph_falls_back_to_the_stock_check() -> None:
    module = _random_graph(random.Random(99), size=40)
    nodes = list(module.graph.nodes)
    nodes[5].prepend(nodes[10])  # a reader before what it reads: no bitmasks for this graph
    with pytest.raises(ValueError, match="not in order"):
        grouping.Reachability(module)
    stock = _proposals(module, 99)
    with grouping.linear_grouping():
        assert _proposals(module, 99) == stock
