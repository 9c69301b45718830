"""The export stage's child process: its errors, interrupts and deaths reach the parent as one line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mobq.errors import CheckpointError, StageError
from mobq.pte import isolate
from mobq.pte.lowering import ExportOptions


def test_a_mobq_error_in_the_child_is_raised_again_with_its_line() -> None:
    error = isolate._child_error(
        1, {"error": ["CheckpointError", "model.safetensors is truncated"]}
    )
    assert isinstance(error, CheckpointError) and str(error) == "model.safetensors is truncated"


def test_a_bug_in_the_child_is_a_stage_error_naming_it() -> None:
    error = isolate._child_error(1, {"error": ["RuntimeError", "shape mismatch"]})
    assert isinstance(error, StageError) and "RuntimeError: shape mismatch" in str(error)


@pytest.mark.parametrize("code", [130, -signal.SIGINT, -signal.SIGTERM])
def test_an_interrupted_child_is_an_interrupt(code: int) -> None:
    assert isinstance(isolate._child_error(code, {}), KeyboardInterrupt)


def test_a_killed_child_says_so() -> None:
    error = isolate._child_error(-signal.SIGKILL, {})
    assert isinstance(error, StageError) and "out of memory?" in str(error)
    silent = isolate._child_error(3, {})
    assert "exit 3" in str(silent)


def test_the_childs_own_errors_come_back_through_a_real_process(tmp_path: Path) -> None:
    """A checkpoint directory that does not exist fails in the child, as in one process."""
    with pytest.raises(Exception, match=str(tmp_path / "absent")):
        isolate.export_in_child(
            "hf", tmp_path / "absent", tmp_path / "model.pte", ExportOptions(ctx=32), {}
        )
    assert not (tmp_path / "model.pte").exists()


def test_unknown_exporter_is_refused() -> None:
    with pytest.raises(StageError, match="unknown exporter 'onnx'"):
        isolate.export_in_child("onnx", Path("m"), Path("p.pte"), ExportOptions(ctx=8), {})
