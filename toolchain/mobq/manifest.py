"""manifest.json: what each stage produced, read by `mobq run/bench/eval` and by the apps.

The apps take the program and tokenizer file names, eos/bos ids, context length and chat
format from here — never from file names. Strict on read: a malformed manifest is a
clear error naming the field, never a crash half-way through a run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobq import fsutil
from mobq.errors import InputError
from mobq.metadata import PromptFormat

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Model):
    path: str
    role: str = Field(description="program | tokenizer | tokenizer_config | ...")
    bytes: int
    sha256: str


class StageRecord(_Model):
    name: str
    seconds: float
    cached: bool
    key: str | None = None
    peak_rss_mb: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ModelInfo(_Model):
    name: str
    family: str
    architecture: str
    source: dict[str, Any]
    params: dict[str, Any] = Field(description="ExecuTorch ModelArgs derived from config.json")
    parameters: int = Field(description="parameter count of the exported model")


class ExportInfo(_Model):
    scheme: str
    group_size: int
    hqq: bool
    overrides: list[dict[str, str]] = Field(default_factory=list)
    ctx: int
    max_seq_len: int
    dtype: str = "fp32"
    backend: str = "xnnpack"
    kv_cache: bool = True
    sdpa_with_kv_cache: bool = True
    dynamic_shape: bool = True
    provenance: dict[str, str] = Field(default_factory=dict)


class RuntimeInfo(_Model):
    bos_id: int | None
    bos_token: str | None
    add_bos: bool
    eos_ids: list[int]
    eos_tokens: list[str]
    vocab_size: int
    tokenizer_vocab_size: int
    max_context_len: int
    max_seq_len: int
    chat_format: PromptFormat | None = None
    chat_template: str | None = None
    # What mobq changed in tokenizer.json so ExecuTorch's tokenizer splits text as transformers does.
    tokenizer_changes: list[str] = Field(default_factory=list)
    provenance: dict[str, str] = Field(default_factory=dict)


class Manifest(_Model):
    schema_version: int = SCHEMA_VERSION
    mobq_version: str
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    model: ModelInfo
    export: ExportInfo
    runtime: RuntimeInfo
    quantization: dict[str, Any] | None = None
    verification: dict[str, Any]
    # Multimodal programs: how a picture is prepared for `vision_encoder` (vision.ImageSpec).
    image: dict[str, Any] | None = None
    files: list[FileEntry]
    stages: list[StageRecord]
    versions: dict[str, str]
    host: dict[str, Any]

    def file(self, role: str) -> FileEntry:
        for entry in self.files:
            if entry.role == role:
                return entry
        raise InputError(f"manifest lists no file with role '{role}'")

    def checked_path(self, export_dir: Path, role: str) -> Path:
        """The file of `role` in an export directory, refusing one that is missing or resized."""
        entry = self.file(role)
        path = Path(export_dir) / entry.path
        if not path.is_file():
            raise InputError(f"{path} is missing (listed in the manifest as the {role}); re-export")
        size = path.stat().st_size
        if size != entry.bytes:
            raise InputError(
                f"{path} has {size} bytes but the manifest records {entry.bytes}: truncated or replaced; re-export it"
            )
        return path

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST
        fsutil.write_text(path, self.model_dump_json(indent=2) + "\n")
        return path


def file_entry(directory: Path, name: str, role: str) -> FileEntry:
    path = Path(directory) / name
    return FileEntry(
        path=name, role=role, bytes=path.stat().st_size, sha256=fsutil.sha256_file(path)
    )


def load_manifest(export_dir: Path) -> Manifest:
    """Read OUT/manifest.json (or a manifest path) strictly, with a one-line error."""
    path = Path(export_dir)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise InputError(f"no manifest at {path}: pass the output directory of `mobq export`")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{path}: field '{where}': {first['msg']}") from exc


def manifest_json_schema() -> dict[str, Any]:
    return Manifest.model_json_schema()
