"""Content-keyed stage cache: a rerun with the same inputs and options reuses finished stages.

A stage's key hashes the stage name and version, the key (or content hash) of its input and
its options. A stage directory counts only once its `stage.json` marker exists; anything else
under the cache is a leftover of an interrupted run and is removed before reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
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


# ------------------------------------------------------------------ housekeeping (`mobq cache`)

# What each top-level folder of the cache holds, for `mobq cache ls`.
KINDS = {"stages": "stage", "random": "random-weights", "demo": "demo model"}


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str  # an export stage (untie, quantize, ...), random-weights or demo model
    bytes: int
    modified: float  # when the entry was finished (its newest file), seconds since the epoch
    complete: bool  # a stage without its stage.json marker is a leftover of an interrupted run
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def entries(root: Path | None = None) -> list[CacheEntry]:
    """Everything under the cache, largest first."""
    root = Path(root or cache_root())
    found = []
    for folder, kind in KINDS.items():
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            if path.is_dir():
                found.append(_entry(path, kind))
    return sorted(found, key=lambda e: e.bytes, reverse=True)


def _entry(path: Path, kind: str) -> CacheEntry:
    files = [p for p in path.rglob("*") if p.is_file()]
    modified = max((p.stat().st_mtime for p in files), default=path.stat().st_mtime)
    complete, detail = True, path.name
    if kind == "stage":
        marker = path / MARKER
        complete = marker.is_file()
        kind = path.name.rsplit("-", 1)[0]
        if complete:
            result = json.loads(marker.read_text()).get("result") or {}
            detail = (
                ", ".join(
                    f"{k} {result[k]}" for k in ("scheme", "family", "bytes") if result.get(k)
                )
                or path.name
            )
        else:
            detail = "incomplete: left by an interrupted run"
    return CacheEntry(path, kind, sum(p.stat().st_size for p in files), modified, complete, detail)


def prune(
    *,
    older_than_days: float | None = None,
    kind: str | None = None,
    everything: bool = False,
    dry_run: bool = False,
    root: Path | None = None,
) -> list[CacheEntry]:
    """Remove the entries selected (incomplete ones always); returns what was (or would be)
    removed. A later export simply rebuilds what it needs."""
    import time

    from mobq.errors import InputError

    if not everything and older_than_days is None and kind is None:
        raise InputError("say what to prune: --older-than DAYS, --stage NAME or --all")
    if older_than_days is not None and older_than_days < 0:
        raise InputError(f"--older-than must be >= 0 days, got {older_than_days}")
    cutoff = time.time() - (older_than_days or 0) * 86400
    chosen = [
        e
        for e in entries(root)
        if not e.complete
        or everything
        or ((kind is None or e.kind == kind) and (older_than_days is None or e.modified <= cutoff))
    ]
    if not dry_run:
        for entry in chosen:
            fsutil.remove(entry.path)
    return chosen
