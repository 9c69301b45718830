"""`mobq publish`: push a verified .pte export, or a quantized server checkpoint, to the Hub.

One commit (huggingface_hub's `upload_folder`) holds the files and a model card rendered for
the target repo, so the usage snippets name it; the local directory is left as it is. An
export is checked against its manifest's sha256 before anything is uploaded. The token is
whatever huggingface_hub finds (HF_TOKEN or `hf auth login`), never a flag, so it stays out
of shell history.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mobq import hub, progress
from mobq.errors import InputError, StageError

# mobq's own bookkeeping and temporaries do not belong in a model repo.
IGNORE = [".*", "*/.*", ".mobq-tmp-*", "*/.mobq-tmp-*"]
CARD = "README.md"


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    url: str
    kind: Literal["export", "checkpoint"]
    files: list[str]
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "url": self.url,
            "kind": self.kind,
            "files": self.files,
            "bytes": self.bytes,
        }


def check_repo_id(repo_id: str) -> str:
    return hub.check_repo_id(repo_id)


def make_api(token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _export_files(directory: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The manifest's files (sha256-checked), manifest.json and bench.json when present, and
    the bench results for the card."""
    from mobq.card import BENCH_FILE
    from mobq.manifest import MANIFEST, load_manifest

    hub.check_export(directory, str(directory))
    manifest = load_manifest(directory)
    if not manifest.verification.get("passed"):
        raise InputError(
            f"{directory} did not pass verification; only verified exports are published"
        )
    names = [entry.path for entry in manifest.files] + [MANIFEST]
    bench = _bench_results(directory / BENCH_FILE)
    if bench:
        names.append(BENCH_FILE)
    return names, bench


def _bench_results(path: Path) -> list[dict[str, Any]]:
    """`mobq bench --json` output kept beside the export, validated by the shared schema."""
    if not path.is_file():
        return []
    from pydantic import ValidationError

    from mobq.results import BenchResult

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        items = raw if isinstance(raw, list) else [raw]
        return [BenchResult.model_validate(item).model_dump(mode="json") for item in items]
    except (json.JSONDecodeError, ValidationError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise InputError(f"{path} is not `mobq bench --json` output: {first}") from exc


def _checkpoint_files(directory: Path) -> list[str]:
    if not (directory / "config.json").is_file():
        raise InputError(
            f"{directory} is neither a mobq export (no manifest.json) nor a Hugging Face checkpoint (no config.json)"
        )
    names = sorted(p.name for p in directory.iterdir())
    if not any(name.endswith(".safetensors") for name in names):
        raise InputError(f"{directory} has no .safetensors weights to publish")
    return names


def _server_card(directory: Path, repo_id: str) -> str | None:
    """The card rendered for this repo when mobq made the checkpoint, else None (the
    directory's own README.md, if any, goes up as it is)."""
    from mobq.server import modelcard

    if (directory / modelcard.RECORD_FILE).is_file():
        return modelcard.render(directory, repo_id=repo_id)
    return None


def plan(
    directory: Path, repo_id: str
) -> tuple[Literal["export", "checkpoint"], list[str], str | None]:
    """What would go up: the kind of directory, its file names and the rendered card."""
    from mobq.manifest import MANIFEST

    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"no such directory: {directory}")
    if (directory / MANIFEST).is_file():
        from mobq import card
        from mobq.manifest import load_manifest

        names, bench = _export_files(directory)
        return "export", names, card.render(load_manifest(directory), repo_id, bench)
    names = _checkpoint_files(directory)
    return "checkpoint", names, _server_card(directory, repo_id)


def run(
    directory: Path,
    repo_id: str,
    *,
    private: bool = False,
    message: str | None = None,
    api: Any = None,
) -> PublishResult:
    """Create `repo_id` if needed and upload DIRECTORY to it in one commit."""
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    directory = Path(directory)
    kind, names, card = plan(directory, repo_id)
    if api is None:
        token = hub.token()
        if not token:
            raise InputError(
                "publishing needs a Hugging Face token with write access: `hf auth login`, or "
                "HF_TOKEN=... (https://huggingface.co/settings/tokens)"
            )
        api = make_api(token)
    with tempfile.TemporaryDirectory(prefix="mobq-publish-") as scratch:
        staged = _stage(directory, names, card, Path(scratch))
        uploaded = sorted(
            p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()
        )
        size = sum((staged / name).stat().st_size for name in names if (staged / name).is_file())
        try:
            with progress.stage(
                "publish", f"{kind}, {len(names)} files, {hub.human_size(size)} to {repo_id}"
            ):
                api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
                info = api.upload_folder(
                    repo_id=repo_id,
                    folder_path=staged,
                    repo_type="model",
                    commit_message=message or f"Upload {directory.name} with mobq",
                    ignore_patterns=IGNORE,
                    # An export's repo is that export: files of an earlier upload go.
                    delete_patterns=["*"] if kind == "export" else None,
                )
        except HfHubHTTPError as exc:
            first = " ".join(str(exc).split())[:200]
            raise StageError(
                f"upload to {repo_id} failed: {first}; check that your token can write to it"
            ) from exc
    url = str(getattr(info, "commit_url", "") or f"{hub.endpoint()}/{repo_id}")
    files = [n for n in uploaded if not any(Path(n).match(p) for p in IGNORE)]
    return PublishResult(repo_id=repo_id, url=url, kind=kind, files=files, bytes=size)


def _stage(directory: Path, names: list[str], card: str | None, scratch: Path) -> Path:
    """A folder of links to the files to upload, plus the rendered card: `upload_folder`
    then makes one commit, and nothing is written into the user's directory."""
    staged = scratch / "upload"
    staged.mkdir()
    for name in names:
        if card is not None and name == CARD:
            continue
        os.symlink((directory / name).resolve(), staged / name)
    if card is not None:
        (staged / CARD).write_text(card, encoding="utf-8")
    return staged
