"""`mobq bundle ios|android`: put an export into a sample app and check it fits the phone.

The files to copy come from the export's manifest (every listed file plus manifest.json), are
copied into a temporary sibling of the app's model folder, sha256-checked against the manifest
and renamed into place, so the app never sees half a bundle. The memory check adds the
program, the KV cache at the export's context length (from the manifest's model shape) and a
runtime allowance, and compares that with what each phone class gives an app
(data/phone_classes.yaml).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mobq import fsutil, progress
from mobq.errors import InputError, ResourceError
from mobq.manifest import MANIFEST, Manifest, load_manifest

Target = Literal["ios", "android"]
TARGETS: tuple[Target, ...] = ("ios", "android")
GB = 1024**3
MB = 1024**2
# Activations, the tokenizer, the runtime and the app itself, on top of weights and KV cache.
# ExecuTorch's llama runner on XNNPACK plans activations for one prefill chunk (max_seq_len).
RUNTIME_ALLOWANCE_BYTES = 256 * MB
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
REPO = Path(__file__).resolve().parents[2]
# The benchmark prompt set both apps run (a golden file: the Kotlin and Swift tests pin it).
PROMPT_SET = REPO / "docs" / "schema" / "examples" / "prompt-set.json"
PROMPTS_FILE = "prompts.json"
# Where each app reads its bundled model (the apps' sources name the same folders).
APP_DIRS: dict[Target, Path] = {"ios": REPO / "ios_app", "android": REPO / "android_app"}
MODEL_SUBDIR: dict[Target, Path] = {
    "ios": Path("MobqApp/Resources/Model"),
    "android": Path("app/src/main/assets/model"),
}


@dataclass(frozen=True)
class PhoneClass:
    name: str
    example: str
    ram_gb: float
    usable_fraction: float
    memory_bandwidth_gb_s: float = 0.0  # peak LPDDR bandwidth, for the decode projection

    @property
    def budget_bytes(self) -> int:
        return int(self.ram_gb * GB * self.usable_fraction)


@dataclass(frozen=True)
class MemoryNeed:
    program_bytes: int
    kv_cache_bytes: int
    runtime_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.program_bytes + self.kv_cache_bytes + self.runtime_bytes


@dataclass(frozen=True)
class Fit:
    phone: str
    example: str
    budget_mb: float
    need_mb: float
    fits: bool


@dataclass(frozen=True)
class CopiedFile:
    role: str
    source: str
    destination: str
    bytes: int
    sha256: str


@dataclass
class BundleResult:
    target: str
    export_dir: str
    app_dir: str
    model_dir: str
    model: str
    scheme: str
    ctx: int
    files: list[CopiedFile] = field(default_factory=list)
    need: dict[str, float] = field(default_factory=dict)
    fits: list[Fit] = field(default_factory=list)
    # Per phone class: memory fit and projected decode tok/s (projection.py; not measured).
    projections: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def phone_classes() -> dict[str, list[PhoneClass]]:
    text = resources.files("mobq").joinpath("data/phone_classes.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {target: [PhoneClass(**row) for row in raw[target]] for target in TARGETS}


def memory_need(manifest: Manifest) -> MemoryNeed:
    """Program + K and V for every layer at the full context + the runtime allowance."""
    params = manifest.model.params
    n_heads = int(params["n_heads"])
    n_kv_heads = int(params.get("n_kv_heads") or n_heads)
    head_dim = int(params.get("head_dim") or int(params["dim"]) // n_heads)
    dtype = manifest.export.dtype
    if dtype not in DTYPE_BYTES:
        raise InputError(f"manifest export.dtype '{dtype}' is not one of {sorted(DTYPE_BYTES)}")
    kv = (
        2
        * int(params["n_layers"])
        * n_kv_heads
        * head_dim
        * manifest.runtime.max_context_len
        * DTYPE_BYTES[dtype]
    )
    return MemoryNeed(manifest.file("program").bytes, kv, RUNTIME_ALLOWANCE_BYTES)


def check_fit(target: Target, need: MemoryNeed, phone: str | None = None) -> list[Fit]:
    """Each phone class of the target (or the one named); refuses when nothing fits."""
    classes = phone_classes()[target]
    if phone is not None:
        classes = [c for c in classes if c.name == phone]
        if not classes:
            names = ", ".join(c.name for c in phone_classes()[target])
            raise InputError(f"unknown phone class '{phone}' for {target}; choose one of: {names}")
    fits = [
        Fit(
            c.name,
            c.example,
            round(c.budget_bytes / MB, 1),
            round(need.total_bytes / MB, 1),
            need.total_bytes <= c.budget_bytes,
        )
        for c in classes
    ]
    if not any(f.fits for f in fits):
        best = max(fits, key=lambda f: f.budget_mb)
        raise ResourceError(
            f"the model needs ~{best.need_mb:.0f} MB (program {need.program_bytes / MB:.0f} MB + KV cache "
            f"{need.kv_cache_bytes / MB:.0f} MB + runtime {need.runtime_bytes / MB:.0f} MB) but the {best.phone} class "
            f"gives an app ~{best.budget_mb:.0f} MB; export with a smaller --ctx or a smaller model"
        )
    return fits


def bundle(
    target: Target,
    export_dir: Path,
    app_dir: Path | None = None,
    *,
    phone: str | None = None,
    force: bool = False,
) -> BundleResult:
    if target not in TARGETS:
        raise InputError(f"unknown bundle target '{target}'; choose ios or android")
    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    if manifest.image is not None:  # the apps drive TextLLMRunner / LlmModule's text path
        raise InputError(
            f"{export_dir} is a multimodal export; the sample apps run text models: "
            "re-export with --text-only to bundle it"
        )
    app_dir = Path(app_dir) if app_dir is not None else APP_DIRS[target]
    if not app_dir.is_dir():
        raise InputError(
            f"app directory {app_dir} does not exist; pass --app-dir to the {target} app"
        )
    need = memory_need(manifest)
    fits = check_fit(target, need, phone)
    model_dir = app_dir / MODEL_SUBDIR[target]
    fsutil.prepare_output_dir(model_dir, force=force)
    fsutil.ensure_free_disk(model_dir.parent, sum(f.bytes for f in manifest.files), "the bundle")
    with progress.stage("bundle", f"{export_dir} → {model_dir}") as note:
        copied = _copy_checked(manifest, export_dir, model_dir)
        note["note"] = f"{len(copied)} files, {sum(c.bytes for c in copied) / MB:.1f} MB"
    return BundleResult(
        target=target,
        export_dir=str(export_dir),
        app_dir=str(app_dir),
        model_dir=str(model_dir),
        model=manifest.model.name,
        scheme=manifest.export.scheme,
        ctx=manifest.runtime.max_context_len,
        files=copied,
        need={
            "program_mb": round(need.program_bytes / MB, 1),
            "kv_cache_mb": round(need.kv_cache_bytes / MB, 1),
            "runtime_mb": round(need.runtime_bytes / MB, 1),
            "total_mb": round(need.total_bytes / MB, 1),
        },
        fits=fits,
        projections=_projections(manifest, target, [f.phone for f in fits]),
    )


def _projections(manifest: Manifest, target: Target, names: list[str]) -> list[dict[str, Any]]:
    from mobq import projection

    if manifest.export.scheme not in projection.SCHEME_BYTES:
        return []
    phones = [c for c in phone_classes()[target] if c.name in names]
    shape = projection.ModelShape.from_manifest(manifest)
    return [p.to_dict() for p in projection.project_all(shape, phones)]


def _copy_checked(manifest: Manifest, export_dir: Path, model_dir: Path) -> list[CopiedFile]:
    """Copy into a temporary folder, verify every hash, then rename it onto the model folder."""
    copied: list[CopiedFile] = []
    with fsutil.atomic_path(model_dir, is_dir=True) as tmp:
        for entry in manifest.files:
            source = manifest.checked_path(export_dir, entry.role)
            staged = tmp / entry.path
            staged.parent.mkdir(parents=True, exist_ok=True)
            fsutil.copy_file(source, staged)
            digest = fsutil.sha256_file(staged)
            if digest != entry.sha256:
                raise InputError(
                    f"{source} does not match the sha256 in its manifest ({digest[:12]}… vs "
                    f"{entry.sha256[:12]}…): the export was modified; re-export it"
                )
            copied.append(
                CopiedFile(
                    entry.role, str(source), str(model_dir / entry.path), entry.bytes, digest
                )
            )
        if PROMPT_SET.is_file():
            copied.append(
                write_prompts(manifest, export_dir, tmp / PROMPTS_FILE, model_dir / PROMPTS_FILE)
            )
        else:
            progress.info(
                f"[yellow]{PROMPT_SET} not found: no {PROMPTS_FILE} (the iOS app needs it for prefill tokens/sec)[/]"
            )
        fsutil.copy_file(export_dir / MANIFEST, tmp / MANIFEST)
        copied.append(
            CopiedFile(
                "manifest",
                str(export_dir / MANIFEST),
                str(model_dir / MANIFEST),
                (tmp / MANIFEST).stat().st_size,
                fsutil.sha256_file(tmp / MANIFEST),
            )
        )
    return copied


def write_prompts(manifest: Manifest, export_dir: Path, staged: Path, final: Path) -> CopiedFile:
    """The benchmark prompts with their token counts from this export's tokenizer.

    ExecuTorch's iOS runner reports no token counts, so the iOS app takes the prompt length
    from here to turn time-to-first-token into prefill tokens/sec (Android reads the runner's
    stats and uses this only as a cross-check).
    """
    import json

    from tokenizers import Tokenizer

    prompt_set = json.loads(PROMPT_SET.read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(manifest.checked_path(export_dir, "tokenizer")))
    chat = manifest.runtime.chat_format
    prompts = []
    for prompt in prompt_set["prompts"]:
        # The same rendering the apps do (thinking off); special tokens are in the text.
        rendered = chat.render([("user", prompt["text"])], think=False) if chat else prompt["text"]
        ids = tokenizer.encode(rendered, add_special_tokens=False).ids
        prompts.append({**prompt, "prompt_tokens": len(ids)})
    fsutil.write_json(staged, {"name": prompt_set["name"], "prompts": prompts})
    return CopiedFile(
        "prompts", str(PROMPT_SET), str(final), staged.stat().st_size, fsutil.sha256_file(staged)
    )
