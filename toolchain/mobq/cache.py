"""Content-keyed stage cache: a rerun with the same inputs and options reuses finished stages.

A stage's key hashes the stage name and version, the key (or content hash) of its input and
its options. A stage directory counts only once its `stage.json` marker exists; anything else
under the cache is a leftover of an interrupted run and is removed before reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mobq import fsutil

MARKER = "stage.json"


def cache_root() -> Path:
    return Path(os.environ.get("MOBQ_CACHE") or Path.home() / ".cache" / "mobq")


def stage_key(stage: str, **inputs: Any) -> str:
    payload = json.dumps({"stage": stage, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class StageCache:
    def __init__(self, root: Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root or cache_root()) / "stages"
        self.enabled = enabled

    def path(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key[:20]}"

    def lookup(self, stage: str, key: str) -> dict[str, Any] | None:
        directory = self.path(stage, key)
        marker = directory / MARKER
        if self.enabled and marker.is_file():
            try:
                record = json.loads(marker.read_text())
            except json.JSONDecodeError:
                record = None
            if record and record.get("key") == key:
                return record
        if directory.exists():
            fsutil.remove(directory)  # incomplete or stale: start this stage afresh
        return None

    def is_complete(self, stage: str, key: str) -> bool:
        """Whether a finished result exists (no side effects, unlike `lookup`)."""
        return self.enabled and (self.path(stage, key) / MARKER).is_file()

    def commit(self, stage: str, key: str, record: dict[str, Any]) -> None:
        fsutil.write_json(self.path(stage, key) / MARKER, {"key": key, "stage": stage, **record})

    def discard(self, stage: str, key: str) -> None:
        fsutil.remove(self.path(stage, key))


def _hash_cache_file() -> Path:
    return cache_root() / "file-hashes.json"


def file_digest(path: Path) -> str:
    """sha256 of a file; Hugging Face cache blobs are named by it, others are hashed once."""
    real = Path(path).resolve()
    if len(real.name) == 64 and all(c in "0123456789abcdef" for c in real.name):
        return real.name
    stat = real.stat()
    memo_key = f"{real}:{stat.st_size}:{stat.st_mtime_ns}"
    memo_path = _hash_cache_file()
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    if memo_key not in memo:
        memo[memo_key] = fsutil.sha256_file(real)
        fsutil.write_json(memo_path, memo)
    return memo[memo_key]


def directory_fingerprint(directory: Path) -> str:
    """Content hash of a model directory (names, sizes, file digests)."""
    entries = []
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            entries.append(
                (str(path.relative_to(directory)), path.stat().st_size, file_digest(path))
            )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
