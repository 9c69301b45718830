"""The Hugging Face Hub: downloads with their size announced, and published exports fetched back.

Everything goes through huggingface_hub and its cache, so revision pinning, HF_HUB_OFFLINE,
HF_ENDPOINT and `hf auth login` behave as they do for every other Hub tool. A published
export is used only after every file its manifest lists matched the recorded sha256.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.errors import CheckpointError, InputError, ModelNotFound


def is_repo_id(ref: str) -> bool:
    """`org/name` that is not an existing local path: a Hub repo."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if ref.startswith((".", "/", "~")) or Path(ref).expanduser().exists() or ref.count("/") != 1:
        return False
    if Path(ref.split("/")[0]).is_dir():  # exports/typo: a missing local export, not a repo
        return False
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id: str) -> str:
    """A repo id fit to publish to, or a one-line error saying what one looks like."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise InputError(
            f"the repo must look like USER/NAME (letters, digits, '.', '_', '-'), got {repo_id!r}: "
            f"{' '.join(str(exc).split())[:160]}"
        ) from exc
    if repo_id.count("/") != 1:
        raise InputError(f"the repo must look like USER/NAME, got {repo_id!r}")
    return repo_id


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class _ByteBar:
    """What huggingface_hub asks of a `tqdm_class`, forwarding bytes to mobq's progress."""

    advance: Any = None
    n = 0
    total = 0
    disable = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _ByteBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, n: int | float | None = 1) -> None:
        if n and type(self).advance is not None:
            type(self).advance(int(n))

    def __getattr__(self, name: str) -> Any:  # close, refresh, set_postfix_str, ...
        return lambda *args, **kwargs: None


def _plan(repo_id: str, revision: str | None, allow_patterns: list[str] | None) -> list[Any]:
    from huggingface_hub import snapshot_download

    return snapshot_download(  # type: ignore[return-value]
        repo_id, revision=revision, allow_patterns=allow_patterns, dry_run=True, tqdm_class=_ByteBar
    )


def download(
    repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None
) -> Path:
    """A snapshot in the HF cache: the size is announced first, then downloaded with byte
    progress; from the cache alone when it is complete or HF_HUB_OFFLINE is set."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import DryRunError, HfHubHTTPError, LocalEntryNotFoundError

    with _hub_errors(repo_id, revision):
        if offline():
            return Path(
                snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns)
            )
        try:
            plan = _plan(repo_id, revision, allow_patterns)
        except DryRunError as exc:
            # The Hub could not list the repo: use what the cache holds, as huggingface_hub
            # does, else report why the Hub refused (not found, gated, ...).
            try:
                return Path(
                    snapshot_download(
                        repo_id,
                        revision=revision,
                        allow_patterns=allow_patterns,
                        local_files_only=True,
                    )
                )
            except LocalEntryNotFoundError:
                if isinstance(exc.__cause__, HfHubHTTPError):
                    raise exc.__cause__ from None
                raise
        todo = [f for f in plan if f.will_download]
        total = sum(f.file_size or 0 for f in plan)
        missing = sum(f.file_size or 0 for f in todo)
        if todo:
            progress.info(
                f"{repo_id}: {len(plan)} files, {human_size(total)}; downloading {len(todo)} "
                f"({human_size(missing)}) into the Hugging Face cache"
            )
        commit = plan[0].commit_hash if plan else revision
        with progress.task(f"downloading {repo_id}", total=missing or None, unit="B") as advance:
            bar = type("Bar", (_ByteBar,), {"advance": staticmethod(advance)})
            # One file at a time: one bar over the announced total. Files already in the cache
            # are linked into this commit's snapshot without a download.
            for item in plan:
                hf_hub_download(repo_id, item.filename, revision=commit, tqdm_class=bar)
        return Path(
            snapshot_download(
                repo_id, revision=commit, allow_patterns=allow_patterns, local_files_only=True
            )
        )


def human_size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@contextlib.contextmanager
def _hub_errors(repo: str, revision: str | None) -> Iterator[None]:
    """huggingface_hub's exceptions as one-line mobq errors."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as exc:
        raise ModelNotFound(
            f"{repo} is gated: accept its license on huggingface.co and log in (`hf auth login` or HF_TOKEN)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFound(
            f"hub repository {repo} not found (or private and you are not logged in: `hf auth login` or HF_TOKEN)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFound(f"revision {revision} of {repo} not found") from exc
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline() else "the hub could not be reached"
        raise ModelNotFound(
            f"{repo} is not in the local Hugging Face cache and {why}; download it once "
            "online or pass a local directory"
        ) from exc
    except OSError as exc:
        first = " ".join(str(exc).split())[:200]
        raise ModelNotFound(f"could not download {repo}: {first}") from exc


# ------------------------------------------------------------------ published exports


def fetch_export(repo_id: str, revision: str | None = None) -> Path:
    """A published export, downloaded (or found) in the HF cache and checked against its
    manifest before anything loads it."""
    path = download(repo_id, revision)
    check_export(path, f"{repo_id}" + (f"@{revision}" if revision else ""))
    return path


def check_export(directory: Path, where: str) -> None:
    """Every file the manifest lists exists with its recorded size and sha256."""
    from mobq.manifest import MANIFEST, load_manifest

    if not (Path(directory) / MANIFEST).is_file():
        raise InputError(f"{where} has no {MANIFEST}: it is not a mobq export")
    manifest = load_manifest(directory)
    total = sum(entry.bytes for entry in manifest.files)
    with progress.task(f"checking {where} against its manifest", total=total, unit="B") as advance:
        for entry in manifest.files:
            path = Path(directory) / entry.path
            if not path.is_file():
                raise CheckpointError(f"{where} lacks {entry.path}, which its manifest lists")
            digest = fsutil.sha256_file(path)
            if digest != entry.sha256:
                raise CheckpointError(
                    f"{entry.path} of {where} does not match its manifest (sha256 {digest[:12]}…, "
                    f"expected {entry.sha256[:12]}…): corrupt or replaced; nothing was loaded. "
                    f"Delete it from the HF cache (`hf cache rm`) and fetch it again, or ask the publisher"
                )
            advance(entry.bytes)


def token() -> str | None:
    """The Hub token as every HF tool finds it: HF_TOKEN, else `hf auth login`'s stored one."""
    from huggingface_hub import get_token

    return get_token()


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
