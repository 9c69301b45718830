"""Atomic writes, hashing and disk checks.

Every artifact mobq writes goes to a temporary name in the same directory and is renamed
into place when complete, so an interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobq.errors import OutputExists, ResourceError

TMP_PREFIX = ".mobq-tmp-"


@contextlib.contextmanager
def atomic_path(target: Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it onto `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TMP_PREFIX}{os.getpid()}-{target.name}-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _publishable(tmp)
        _replace(tmp, target)
    except BaseException:
        remove(tmp)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publishable(path: Path) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; finished artifacts get the umask's
    usual modes so they can be pushed to a phone, served or shared like any other file."""
    if not path.exists() or path.is_symlink():
        return
    mask = _current_umask()
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_dir() and not child.is_symlink():
                os.chmod(child, 0o777 & ~mask)


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        # A directory cannot be renamed over a non-empty one: move the old one aside first.
        old = dst.with_name(f"{TMP_PREFIX}{os.getpid()}-{dst.name}-old-{os.urandom(4).hex()}")
        os.replace(dst, old)
        os.replace(src, dst)
        remove(old)
    else:
        os.replace(src, dst)


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def copy_file(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when on the same filesystem (no extra disk), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def ensure_free_disk(directory: Path, needed_bytes: int, what: str) -> None:
    """Fail before starting a stage rather than half-way through writing its output."""
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise ResourceError(
            f"not enough free disk for {what}: need {needed_bytes / 1e9:.2f} GB in {probe}, "
            f"{free / 1e9:.2f} GB free; free some space or choose another --out"
        )


def prepare_output_dir(path: Path, *, force: bool) -> None:
    """Refuse to overwrite a non-empty directory the user has unless --force is given."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExists(
            f"output path {path} exists and is not a directory; choose another --out"
        )
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExists(
            f"output directory {path} already exists and is not empty; pass --force to replace it"
        )


def clean_stale_temporaries(directory: Path) -> list[Path]:
    """Remove temporaries left by a killed run (its pid is gone), so a rerun starts cleanly."""
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for child in directory.iterdir():
        if not child.name.startswith(TMP_PREFIX):
            continue
        pid_text = child.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):
            continue
        remove(child)
        removed.append(child)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
