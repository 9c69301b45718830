"""When each stage and step began and ended, appended to a file: for memory measured from outside.

`bench/export_memory.py` samples the process tree's memory from outside; to say in which phase
the peak fell, it sets $MOBQ_PHASE_LOG and every mobq process in the tree (the CLI and the
export stage's lowering child) appends one JSON line per stage or step start and end:
`{"t": unix seconds, "pid": ..., "event": "start"|"end", "kind": "stage"|"task", "name": ...}`.
Unset (the normal case), nothing changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mobq import progress

ENV = "MOBQ_PHASE_LOG"


class PhaseLogReporter:
    """Passes everything to `inner` and logs stage and task boundaries to `path`."""

    def __init__(self, inner: progress.Reporter, path: Path) -> None:
        self.inner, self.path = inner, Path(path)

    def _log(self, event: str, kind: str, name: str) -> None:
        line = {"t": time.time(), "pid": os.getpid(), "event": event, "kind": kind, "name": name}
        # One short O_APPEND write per line: lines from several processes do not interleave.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    def stage_start(self, name: str, detail: str) -> None:
        self._log("start", "stage", name)
        self.inner.stage_start(name, detail)

    def stage_end(self, name: str, seconds: float, note: str) -> None:
        self.inner.stage_end(name, seconds, note)
        self._log("end", "stage", name)

    def info(self, message: str) -> None:
        self.inner.info(message)

    @contextlib.contextmanager
    def task(
        self, description: str, total: int | None, unit: str = ""
    ) -> Iterator[Callable[[int], None]]:
        self._log("start", "task", description)
        cm = (
            self.inner.task(description, total, unit)
            if unit
            else self.inner.task(description, total)
        )
        try:
            with cm as advance:
                yield advance
        finally:
            self._log("end", "task", description)


def unwrapped(reporter: Any) -> Any:
    """The reporter a PhaseLogReporter passes to (the reporter itself otherwise)."""
    return reporter.inner if isinstance(reporter, PhaseLogReporter) else reporter


def install_from_env() -> None:
    """Wrap the current reporter when $MOBQ_PHASE_LOG names a file; otherwise do nothing."""
    path = os.environ.get(ENV)
    current = progress.reporter()
    if path and not isinstance(current, PhaseLogReporter):
        progress.set_reporter(PhaseLogReporter(current, Path(path)))


def read(path: Path) -> list[dict[str, Any]]:
    """The logged events, oldest first (a missing file: none)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return sorted((json.loads(line) for line in lines if line.strip()), key=lambda e: e["t"])


def phases_at(events: list[dict[str, Any]], when: float) -> dict[int, list[str]]:
    """For each process, the stages and tasks open at time `when`, outermost first."""
    open_by_pid: dict[int, list[str]] = {}
    for event in events:
        if event["t"] > when:
            break
        stack = open_by_pid.setdefault(event["pid"], [])
        label = f"{event['kind']}:{event['name']}"
        if event["event"] == "start":
            stack.append(label)
        elif label in stack:
            del stack[len(stack) - 1 - stack[::-1].index(label)]
    return {pid: stack for pid, stack in open_by_pid.items()}
