"""Progress reporting that stage code can call without knowing who is watching.

Stages call `step(...)` / `task(...)`; the CLI installs a rich reporter that shows the
stage, the step, elapsed time and an ETA on stderr. Tests and Ray workers keep the silent one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Protocol


class Reporter(Protocol):
    def stage_start(self, name: str, detail: str) -> None: ...

    def stage_end(self, name: str, seconds: float, note: str) -> None: ...

    def info(self, message: str) -> None: ...

    def task(
        self, description: str, total: int | None, unit: str = ""
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...


class SilentReporter:
    def stage_start(self, name: str, detail: str) -> None:
        pass

    def stage_end(self, name: str, seconds: float, note: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def task(
        self, description: str, total: int | None, unit: str = ""
    ) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None


class RichReporter:
    """Stage lines plus a live bar (M/N, elapsed, ETA) for stages that know their step count."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def stage_start(self, name: str, detail: str) -> None:
        self.console.print(f"[bold cyan]▶ {name}[/] {detail}")

    def stage_end(self, name: str, seconds: float, note: str) -> None:
        suffix = f" — {note}" if note else ""
        self.console.print(f"[green]✓ {name}[/] {seconds:.1f}s{suffix}")

    def info(self, message: str) -> None:
        self.console.print(f"  {message}")

    @contextlib.contextmanager
    def task(
        self, description: str, total: int | None, unit: str = ""
    ) -> Iterator[Callable[[int], None]]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = [SpinnerColumn(), TextColumn("  {task.description}")]
        if total and unit == "B":  # bytes: "1.2/3.4 GB 25 MB/s" rather than a count
            columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        elif total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task_id = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task_id, n)


_reporter: Reporter = SilentReporter()


def set_reporter(reporter: Reporter) -> None:
    global _reporter
    _reporter = reporter


def reporter() -> Reporter:
    return _reporter


_interrupt_requested = False


def request_interrupt() -> None:
    """Called by the CLI's signal handler before it raises KeyboardInterrupt.

    A library that swallows the KeyboardInterrupt (a broad `except` deep in a tracer, say)
    cannot make mobq carry on: the next stage or step boundary raises it again.
    """
    global _interrupt_requested
    _interrupt_requested = True


def clear_interrupt() -> None:
    global _interrupt_requested
    _interrupt_requested = False


def check_interrupted() -> None:
    if _interrupt_requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def stage(name: str, detail: str = "") -> Iterator[dict[str, str]]:
    """Announce a stage; the caller may set result['note'] to say what it produced."""
    check_interrupted()
    result: dict[str, str] = {"note": ""}
    _reporter.stage_start(name, detail)
    start = time.perf_counter()
    yield result
    check_interrupted()
    _reporter.stage_end(name, time.perf_counter() - start, result["note"])


@contextlib.contextmanager
def task(
    description: str, total: int | None = None, unit: str = ""
) -> Iterator[Callable[[int], None]]:
    """A step with `total` units of work (unit "B": bytes, shown as sizes and a rate)."""
    check_interrupted()
    # Reporters written before `unit` existed still work for counted tasks.
    cm = _reporter.task(description, total, unit) if unit else _reporter.task(description, total)
    with cm as advance:

        def step(n: int = 1) -> None:
            check_interrupted()
            advance(n)

        yield step
    check_interrupted()


def info(message: str) -> None:
    _reporter.info(message)
