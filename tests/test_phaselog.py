"""The phase log bench/export_memory.py reads to say in which stage and step a peak fell."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobq import phaselog, progress


@pytest.fixture(autouse=True)
def _restore_reporter() -> object:
    before = progress.reporter()
    yield
    progress.set_reporter(before)


def test_unset_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(phaselog.ENV, raising=False)
    silent = progress.SilentReporter()
    progress.set_reporter(silent)
    phaselog.install_from_env()
    assert progress.reporter() is silent


def test_stages_and_tasks_are_logged_and_open_phases_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "phases.jsonl"
    monkeypatch.setenv(phaselog.ENV, str(log))
    progress.set_reporter(progress.SilentReporter())
    phaselog.install_from_env()
    phaselog.install_from_env()  # once only: a second call does not wrap twice
    reporter = progress.reporter()
    assert isinstance(reporter, phaselog.PhaseLogReporter)
    assert isinstance(reporter.inner, progress.SilentReporter)
    assert isinstance(phaselog.unwrapped(reporter), progress.SilentReporter)
    with progress.stage("export"):
        with progress.task("lowering", total=3) as advance:
            advance(1)
            events = phaselog.read(log)
            inside = events[-1]["t"]
        with pytest.raises(ValueError), progress.task("serializing"):
            raise ValueError("a failed step still ends")
    events = phaselog.read(log)
    assert [(e["event"], e["name"]) for e in events] == [
        ("start", "export"),
        ("start", "lowering"),
        ("end", "lowering"),
        ("start", "serializing"),
        ("end", "serializing"),
        ("end", "export"),
    ]
    pid = events[0]["pid"]
    assert phaselog.phases_at(events, inside) == {pid: ["stage:export", "task:lowering"]}
    assert phaselog.phases_at(events, events[-1]["t"]) == {pid: []}
    assert phaselog.read(tmp_path / "absent.jsonl") == []
