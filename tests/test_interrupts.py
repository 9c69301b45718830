"""Interrupting a running export leaves nothing that looks finished, and a rerun starts cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def start_export(model: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    options = ["--out", str(out), "--ctx", "48", "--scheme", "8da8w", *extra]
    command = [sys.executable, "-m", "mobq", "export", str(model), *options]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def wait_for(process: subprocess.Popen[str], marker: str, timeout: float = 300) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"never saw {marker!r}: {''.join(seen)}")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupted_export_leaves_no_program_and_reruns_cleanly(
    tiny_untied: Path, tmp_path: Path, signum: int
) -> None:
    out_root = tmp_path / "exports"
    out_root.mkdir()
    out = out_root / "model"
    process = start_export(tiny_untied, out, "--no-cache")  # a real export to interrupt
    wait_for(process, "▶ export")
    time.sleep(3)  # inside torch.export / XNNPACK lowering
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "Interrupted: nothing half-written was left behind." in output
    assert "Traceback" not in output
    assert leftovers(out_root) == []  # no output directory, no temporaries, no model.pte
    if signum == signal.SIGTERM:
        return  # same unwinding as Ctrl-C; one full rerun below is enough

    rerun = start_export(tiny_untied, out)
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output
    assert "reusing cached result" in output  # finished stages before the interruption are kept
    assert (out / "model.pte").is_file() and (out / "manifest.json").is_file()


def test_killed_export_leaves_no_program_and_next_run_recovers(
    tiny_untied: Path, tmp_path: Path
) -> None:
    """SIGKILL gives no chance to clean up: temporaries carry the dead pid and the next run removes them."""
    out_root = tmp_path / "exports"
    out_root.mkdir()
    out = out_root / "model"
    process = start_export(tiny_untied, out, "--no-cache")
    wait_for(process, "▶ export")
    time.sleep(3)
    process.kill()
    process.communicate(timeout=60)
    assert not out.exists()
    assert not list(out_root.rglob("model.pte"))
    stale = out_root / f".mobq-tmp-{process.pid}-model-abc"  # what a kill during assembly leaves
    stale.mkdir()
    (stale / "model.pte").write_bytes(b"partial")
    # The next run removes them first thing (this one then stops at its bad --ctx: cheap).
    rerun = start_export(tiny_untied, out, "--ctx", "0")
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 2, output
    assert not stale.exists() and leftovers(out_root) == []
