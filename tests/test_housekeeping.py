"""`mobq cache ls|prune`, `-v` and shell completion."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq import cache
from mobq.cli import cli


@pytest.fixture
def filled_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two finished stages (one old), a random-weights model and an interrupted stage."""
    monkeypatch.setenv("MOBQ_CACHE", str(tmp_path))
    stages = cache.StageCache()
    for name, key, size in (("quantize", "a" * 64, 3000), ("export", "b" * 64, 1000)):
        directory = stages.path(name, key)
        directory.mkdir(parents=True)
        (directory / "weights.bin").write_bytes(b"x" * size)
        stages.commit(name, key, {"result": {"scheme": "8da4w"}, "seconds": 1.0})
    old = time.time() - 40 * 86400
    for path in stages.path("quantize", "a" * 64).rglob("*"):
        os.utime(path, (old, old))
    (stages.root / "convert-cccccccccccccccccccc").mkdir()
    (stages.root / "convert-cccccccccccccccccccc" / "half.bin").write_bytes(b"x" * 10)
    (tmp_path / "random" / "qwen3-0.6b-0123").mkdir(parents=True)
    (tmp_path / "random" / "qwen3-0.6b-0123" / "model.safetensors").write_bytes(b"x" * 5000)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_ls_says_what_each_entry_is_its_size_and_age(filled_cache: Path) -> None:
    code, output = _run("cache", "ls", "--json")
    assert code == 0, output
    rows = json.loads(output)
    assert [(r["kind"], r["bytes"], r["complete"]) for r in rows] == [
        ("random-weights", 5000, True),
        (
            "quantize",
            3000 + len((cache.StageCache().path("quantize", "a" * 64) / "stage.json").read_bytes()),
            True,
        ),
        (
            "export",
            1000 + len((cache.StageCache().path("export", "b" * 64) / "stage.json").read_bytes()),
            True,
        ),
        ("convert", 10, False),
    ]
    assert rows[1]["modified"] < time.time() - 39 * 86400
    code, text = _run("cache", "ls")
    assert code == 0 and "40 d" in text and "left by an interrupted run" in text


def test_prune_by_age_keeps_the_young_and_drops_leftovers(filled_cache: Path) -> None:
    code, output = _run("cache", "prune", "--older-than", "30", "--json")
    assert code == 0, output
    removed = {r["kind"] for r in json.loads(output)["removed"]}
    assert removed == {"quantize", "convert"}  # the old stage and the interrupted one
    left = {e.kind for e in cache.entries()}
    assert left == {"export", "random-weights"}


def test_prune_dry_run_removes_nothing_and_all_removes_everything(filled_cache: Path) -> None:
    code, output = _run("cache", "prune", "--stage", "export", "--dry-run")
    assert code == 0 and output.startswith("would remove 2 entries"), output  # + the leftover
    assert len(cache.entries()) == 4
    code, output = _run("cache", "prune", "--all")
    assert code == 0 and cache.entries() == []


def test_prune_needs_a_selection(filled_cache: Path) -> None:
    code, output = _run("cache", "prune")
    assert code == 2 and "say what to prune" in output and len(output.strip().splitlines()) == 1
    assert len(cache.entries()) == 4


def test_verbose_shows_library_logs_that_the_default_hides(filled_cache: Path) -> None:
    _run("cache", "ls")
    assert logging.getLogger("huggingface_hub").level == logging.ERROR
    _run("-v", "cache", "ls")
    assert logging.getLogger("huggingface_hub").level == logging.INFO
    assert logging.getLogger("transformers").level == logging.INFO
    _run("cache", "ls")  # leave the default behind for the other tests


def test_completion_script_and_completions() -> None:
    code, script = _run("completion", "bash")
    assert code == 0 and "_MOBQ_COMPLETE=bash_complete" in script
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="mobq",
        env={"_MOBQ_COMPLETE": "bash_complete", "COMP_WORDS": "mobq cac", "COMP_CWORD": "1"},
    )
    assert result.output.strip() == "plain,cache"
