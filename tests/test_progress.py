"""Ctrl-C stops mobq even when a library swallows the KeyboardInterrupt."""

from __future__ import annotations

import pytest

from mobq import progress


@pytest.fixture(autouse=True)
def _clear():
    progress.clear_interrupt()
    yield
    progress.clear_interrupt()


def swallowing_library_call() -> str:
    try:
        raise KeyboardInterrupt  # what the signal handler raises, mid-call
    except BaseException:  # a broad handler deep inside some library
        return "carried on"


def test_a_swallowed_interrupt_is_raised_again_at_the_next_step() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), progress.task("work", total=3) as advance:
        progress.request_interrupt()
        steps.append(swallowing_library_call())
        advance(1)
        steps.append("never")
    assert steps == ["carried on"]


def test_the_next_stage_refuses_to_start_after_an_interrupt() -> None:
    progress.request_interrupt()
    with pytest.raises(KeyboardInterrupt), progress.stage("export"):
        pytest.fail("the stage body must not run")


def test_without_an_interrupt_stages_and_tasks_run_to_the_end() -> None:
    done = []
    with progress.stage("untie") as note, progress.task("copy", total=2) as advance:
        advance(1)
        advance(1)
        note["note"] = "ok"
        done.append(True)
    assert done == [True]
