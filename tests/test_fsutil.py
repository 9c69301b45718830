"""Atomic writes: finished artifacts look like ordinary files, failed ones leave nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mobq import fsutil


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_finished_file_gets_the_umask_modes_not_mkstemps_private_ones(
    tmp_path: Path, umask_022: None
) -> None:
    target = tmp_path / "model.pte"
    fsutil.write_text(target, "program")
    assert target.read_text() == "program"
    assert mode(target) == 0o644  # adb push, web servers and other users can read it


def test_finished_directory_and_subdirectories_are_traversable(
    tmp_path: Path, umask_022: None
) -> None:
    target = tmp_path / "export"
    with fsutil.atomic_path(target, is_dir=True) as tmp:
        (tmp / "nested").mkdir()
        (tmp / "nested" / "file.txt").write_text("x")
    assert mode(target) == 0o755
    assert mode(target / "nested") == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_failure_inside_leaves_neither_target_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    with pytest.raises(RuntimeError), fsutil.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_replacing_a_directory_keeps_only_the_new_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with fsutil.atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{fsutil.TMP_PREFIX}999999999-model.pte-abc"
    live = tmp_path / f"{fsutil.TMP_PREFIX}{os.getpid()}-model.pte-def"
    dead.write_text("partial")
    live.write_text("in progress")
    assert fsutil.clean_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and not dead.exists()
