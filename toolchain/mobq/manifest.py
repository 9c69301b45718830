"""manifest.json: what each stage produced, read by `mobq run/bench/eval` and by the apps.

The apps take the program and tokenizer file names, eos/bos ids, context length and chat
format from here — never from file names. Strict on read: a malformed manifest is a
clear error naming the field, never a crash half-way through a run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobq import fsutil
from mobq.errors import InputError
from mobq.metadata import PromptFormat

if TYPE_CHECKING:
    from mobq.plan import ExportPlan

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


def assemble(
    plan: ExportPlan,
    *,
    program_dir: Path,
    export_result: dict[str, Any],
    quant_result: dict[str, Any] | None,
    params: dict[str, Any],
    records: list[StageRecord],
) -> Manifest:
    """The output directory from the plan and the stage results, renamed into place whole."""
    import shutil

    from mobq.checkpoint import TOKENIZER_FILES

    with fsutil.atomic_path(plan.out, is_dir=True) as tmp:
        fsutil.link_or_copy(program_dir / "model.pte", tmp / "model.pte")
        files = [file_entry(tmp, "model.pte", "program")]
        for name in TOKENIZER_FILES:
            # tokenizer.json is the runner's checked copy from the export stage; the rest as given.
            origin = program_dir if (program_dir / name).is_file() else Path(plan.tokenizer_dir)
            if (origin / name).is_file():
                shutil.copyfile(origin / name, tmp / name)
                files.append(file_entry(tmp, name, name.rsplit(".", 1)[0]))
        manifest = _manifest(plan, export_result, quant_result, params, files, records)
        manifest.write(tmp)
    return manifest


def _manifest(
    plan: ExportPlan,
    export_result: dict[str, Any],
    quant_result: dict[str, Any] | None,
    params: dict[str, Any],
    files: list[FileEntry],
    records: list[StageRecord],
) -> Manifest:
    from mobq import hostinfo
    from mobq.resources import params_parameter_count

    settings, options, runtime_md = plan.settings, plan.export_options, plan.runtime_md
    return Manifest(
        mobq_version=hostinfo.versions()["mobq"],
        model=ModelInfo(
            name=plan.source.display_name,
            family=plan.family.name,
            architecture=(getattr(plan.config, "architectures", None) or ["?"])[0],
            source=plan.source.describe(),
            params=params,
            parameters=params_parameter_count(params),
        ),
        export=ExportInfo(
            scheme=settings.scheme.name,
            group_size=settings.group_size,
            hqq=settings.hqq,
            overrides=[
                {"pattern": o.pattern, "scheme": o.scheme, "origin": o.origin}
                for o in settings.overrides
            ],
            ctx=options.ctx,
            max_seq_len=options.seq_len,
            provenance=settings.provenance,
        ),
        runtime=RuntimeInfo(
            bos_id=runtime_md.bos_id,
            bos_token=runtime_md.bos_token,
            add_bos=runtime_md.add_bos,
            eos_ids=runtime_md.eos_ids,
            eos_tokens=runtime_md.eos_tokens,
            vocab_size=runtime_md.vocab_size,
            tokenizer_vocab_size=runtime_md.tokenizer_vocab_size,
            max_context_len=options.ctx,
            max_seq_len=options.seq_len,
            chat_format=runtime_md.prompt_format,
            chat_template=runtime_md.chat_template,
            tokenizer_changes=export_result.get("runner_tokenizer_changes", []),
            provenance=runtime_md.provenance,
        ),
        quantization=quant_result,
        verification=export_result["verification"],
        image=export_result.get("image"),
        files=files,
        stages=records,
        versions=hostinfo.versions(),
        host=hostinfo.host(),
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
