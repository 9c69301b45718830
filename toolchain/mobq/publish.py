"""`mobq publish`: push a quantized checkpoint and its card to the Hugging Face Hub.

One commit holds the weights, config, tokenizer and the model card rendered for the target
repo (the usage snippets name it); the local directory is left as it is. The token comes from
HF_TOKEN, never from a flag, so it stays out of shell history.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq import progress
from mobq.errors import InputError, StageError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# mobq's own bookkeeping and temporaries do not belong in a model repo.
SKIPPED = (".mobq-tmp-", ".")


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    url: str
    files: list[str]
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "url": self.url, "files": self.files, "bytes": self.bytes}


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise InputError(
            f"--repo must look like USER/NAME (letters, digits, '.', '_', '-'), got {repo_id!r}"
        )
    return repo_id


def files_to_upload(directory: Path) -> list[Path]:
    """Every file of the checkpoint except temporaries and hidden files, README last."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory} is not a Hugging Face checkpoint (no config.json)")
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and not any(part.startswith(SKIPPED) for part in p.relative_to(directory).parts)
    )
    if not any(p.suffix == ".safetensors" for p in files):
        raise InputError(f"{directory} has no .safetensors weights to publish")
    return files


def _card(directory: Path, repo_id: str) -> bytes | None:
    """The card rendered for this repo when mobq made the checkpoint, else the README as is."""
    from mobq.server import modelcard

    if (Path(directory) / modelcard.RECORD_FILE).is_file():
        return modelcard.render(directory, repo_id=repo_id).encode("utf-8")
    return None


def make_api(token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


def run(
    directory: Path,
    repo_id: str,
    *,
    private: bool = False,
    message: str | None = None,
    api: Any = None,
) -> PublishResult:
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    files = files_to_upload(Path(directory))
    if api is None:
        token = os.environ.get("HF_TOKEN")
        if not token:
            raise InputError(
                "publishing needs a Hugging Face token with write access in HF_TOKEN "
                "(https://huggingface.co/settings/tokens); export HF_TOKEN=... and rerun"
            )
        api = make_api(token)
    card = _card(Path(directory), repo_id)
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(directory).as_posix(), path_or_fileobj=str(p))
        for p in files
        if not (card is not None and p.relative_to(directory).as_posix() == "README.md")
    ]
    if card is not None:
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    size = sum(p.stat().st_size for p in files)
    try:
        with progress.stage(
            "publish", f"{len(operations)} files, {size / 1e9:.2f} GB to {repo_id}"
        ):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=message or f"Upload {Path(directory).name} with mobq",
                repo_type="model",
            )
    except HfHubHTTPError as exc:
        first = " ".join(str(exc).split())[:200]
        raise StageError(
            f"upload to {repo_id} failed: {first}; check HF_TOKEN's write access"
        ) from exc
    return PublishResult(
        repo_id=repo_id,
        url=str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}"),
        files=[op.path_in_repo for op in operations],
        bytes=size,
    )
