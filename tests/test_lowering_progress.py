"""Lowering shows where it is: a bar per whole-graph pass and one over XNNPACK's partitions.

ExecuTorch reports nothing while it lowers (minutes at full size), so mobq.pte.watch counts
the Interpreter's nodes and XNNPACK's preprocess calls as they happen.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator

import pytest
import torch

from mobq import progress, runtime
from mobq.pte import watch


class Recorder(progress.SilentReporter):
    """A reporter that keeps each task's description, total and how far it got."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, object]] = []

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        record: dict[str, object] = {"description": description, "total": total, "done": 0}
        self.tasks.append(record)

        def advance(n: int = 1) -> None:
            record["done"] = int(record["done"]) + n  # type: ignore[call-overload]

        yield advance


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    before = progress.reporter()
    progress.set_reporter(recorder := Recorder())
    yield recorder
    progress.set_reporter(before)


def _graph_module(nodes: int) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    value = graph.placeholder("x")
    for _ in range(nodes - 2):
        value = graph.call_function(torch.neg, (value,))
    graph.output(value)
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def test_each_large_graph_pass_counts_its_nodes(recorder: Recorder) -> None:
    large, small = _graph_module(40), _graph_module(5)
    with watch.graph_passes(min_nodes=20, label="edge"):
        torch.fx.Interpreter(large).run(torch.ones(2))
        torch.fx.Interpreter(small).run(torch.ones(2))  # a partition: not watched
        torch.fx.Interpreter(large).run(torch.ones(2))
    assert recorder.tasks == [
        {"description": "edge: graph pass 1", "total": 40, "done": 40},
        {"description": "edge: graph pass 2", "total": 40, "done": 40},
    ]
    torch.fx.Interpreter(large).run(torch.ones(2))  # unwatched again
    assert len(recorder.tasks) == 2


def test_partitions_are_counted_as_xnnpack_lowers_them(recorder: Recorder) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    class TwoPartitions(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(x + 1)
            z = torch.ops.aten.cumsum.default(y, 0)  # not XNNPACK's: splits the graph
            return torch.sigmoid(z * 2)

    exported = torch.export.export(TwoPartitions(), (torch.randn(4, 4),), strict=False)
    with watch.partitions_lowered():
        to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    (bar,) = [t for t in recorder.tasks if "partitions" in str(t["description"])]
    assert bar["total"] == bar["done"] == 2


def test_progress_stays_visible_while_native_logs_are_silenced(
    capfd: pytest.CaptureFixture[str],
) -> None:
    reporter = progress.RichReporter()
    with runtime.quiet_native_logs():
        os.write(2, b"native chatter\n")
        reporter.info("still shown")
    reporter.console.file.flush()
    err = capfd.readouterr().err
    assert "still shown" in err and "native chatter" not in err


def test_a_task_inside_another_joins_its_bar() -> None:
    reporter = progress.RichReporter()
    reporter.console.file = io.StringIO()
    with reporter.task("outer", 2) as outer, reporter.task("inner", 3) as inner:
        inner(3)
        outer(2)  # rich would refuse a second live display: this must not raise
