"""Progress reporting that stage code can call without knowing who is watching.

Stages call `step(...)` / `task(...)`; the CLI installs a rich reporter that shows the
stage, the step, elapsed time and an ETA on stderr. Tests and Ray workers keep the silent one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO


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

        self.console = Console(file=_lasting_stderr(), highlight=False)
        self._bar: Any = None  # the live bar; a task opened inside another joins it

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
        if self._bar is not None:  # rich allows one live display at a time
            outer = self._bar
            task_id = outer.add_task(description, total=total)
            try:
                yield lambda n=1: outer.advance(task_id, n)
            finally:
                outer.remove_task(task_id)
            return
        with Progress(*columns, console=self.console, transient=True) as bar:
            self._bar = bar
            task_id = bar.add_task(description, total=total)
            try:
                yield lambda n=1: bar.advance(task_id, n)
            finally:
                self._bar = None


def _lasting_stderr() -> TextIO:
    """stderr as it is now, still visible while native-log silencing points fd 2 at /dev/null.

    `runtime.quiet_native_logs` hides ExecuTorch's C++ printing during lowering by redirecting
    fds 1 and 2; progress written through a duplicate of fd 2 still reaches the terminal.
    A stderr without a file descriptor (click's CliRunner) is used as it is.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8")


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
