"""`mobq export`: every stage in order, each cached by content, the result verified.

resolve -> untie -> quantize -> convert -> export -> verify -> assemble (`hf` families skip
convert: transformers' own module is exported, in its own layout). The output directory
is assembled under a temporary name and renamed into place only after verification passed,
so an interrupted or failed run leaves no `model.pte` that looks finished.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobq import (
    cache,
    fsutil,
    hostinfo,
    metadata,
    progress,
)
from mobq import convert as convert_stage
from mobq import quantize as quantize_stage
from mobq import untie as untie_stage
from mobq import verify as verify_stage
from mobq.errors import InputError
from mobq.families import family_for_config, text_config
from mobq.manifest import (
    ExportInfo,
    Manifest,
    ModelInfo,
    RuntimeInfo,
    StageRecord,
    file_entry,
)
from mobq.pte import isolate, verify_multimodal
from mobq.pte import llama as llama_builder
from mobq.pte.lowering import ExportOptions
from mobq.schemes import QuantOptions, check_scheme_name
from mobq.source import TOKENIZER_FILES, Source, load_config, resolve
from mobq.vision import image_spec

PIPELINE_VERSION = "3"  # 3: one lowering (mobq.pte), like-with-like gate; 2: runner tokenizer
DEFAULT_SCHEME = "8da4w"
DEFAULT_CTX = 1024


@dataclass
class ExportRequest:
    model: str
    out: Path | None = None
    scheme: str | None = None
    ctx: int | None = None
    max_seq_len: int | None = None
    extended_ops: bool | None = None  # None: the lowering's default (mobq.pte.lowering)
    group_size: int | None = None
    hqq: bool | None = None
    overrides: list[str] = field(default_factory=list)
    random_weights: bool = False
    text_only: bool = False  # a multimodal checkpoint: export its text decoder alone
    seed: int = 0
    tokenizer: Path | None = None
    revision: str | None = None
    force: bool = False
    use_cache: bool = True
    min_sqnr_db: float | None = None


@dataclass
class Settings:
    """The effective choices and where each came from (default < recipe < CLI)."""

    scheme: str
    ctx: int
    group_size: int
    hqq: bool
    overrides: list[quantize_stage.Override]
    provenance: dict[str, str]


def resolve_settings(request: ExportRequest, source: Source) -> Settings:
    recipe = source.recipe
    defaults = recipe.defaults if recipe else None
    provenance: dict[str, str] = {}

    def pick(name: str, cli: Any, fallback: Any) -> Any:
        if cli is not None:
            provenance[name] = "cli"
            return cli
        if defaults is not None:
            provenance[name] = f"recipe {recipe.name}"  # type: ignore[union-attr]
            return getattr(defaults, name)
        provenance[name] = "mobq default"
        return fallback

    scheme = pick("scheme", request.scheme, DEFAULT_SCHEME)
    check_scheme_name(scheme)
    ctx = pick("ctx", request.ctx, DEFAULT_CTX)
    group_size = pick("group_size", request.group_size, 32)
    hqq = pick("hqq", request.hqq, False)
    overrides = [quantize_stage.Override.parse(text) for text in request.overrides]
    if recipe is not None:
        overrides += [
            quantize_stage.Override(o.pattern, o.scheme, f"recipe {recipe.name}")
            for o in recipe.overrides
        ]
    return Settings(scheme, ctx, group_size, hqq, overrides, provenance)


def default_out(source: Source, settings: Settings) -> Path:
    return Path("exports") / f"{source.display_name}-{settings.scheme}-ctx{settings.ctx}"


def _check_request(request: ExportRequest) -> None:
    """Flag-level mistakes fail before anything is downloaded or built."""
    if request.scheme is not None:
        check_scheme_name(request.scheme)
    if request.ctx is not None:
        check_ctx(request.ctx, None)
    for text in request.overrides:
        quantize_stage.Override.parse(text)
    if request.group_size is not None:
        QuantOptions(group_size=request.group_size)


def resolve_source(request: ExportRequest) -> Source:
    if not request.random_weights:
        return resolve(request.model, revision=request.revision)
    from mobq import random_weights
    from mobq.recipes import get_recipe

    if Path(request.model).exists():
        raise InputError(
            "--random-weights takes a recipe name (its architecture is in export_configs/)"
        )
    recipe = get_recipe(request.model)
    with progress.stage("random-weights", f"{recipe.name} architecture, seed {request.seed}"):
        path = random_weights.cached_build(
            recipe, seed=request.seed, tokenizer_dir=request.tokenizer
        )
    return Source("random", request.model, path, recipe, recipe.hub_id, None)


def _clean_stale(directory: Path) -> None:
    for stale in fsutil.clean_stale_temporaries(directory):
        progress.info(f"[dim]removed {stale.name}, left by an interrupted run[/]")


def check_ctx(ctx: int, max_positions: int | None) -> None:
    if ctx <= 0:
        raise InputError(f"--ctx must be a positive number of tokens, got {ctx}")
    if max_positions and ctx > max_positions:
        raise InputError(
            f"--ctx {ctx} exceeds the model's max_position_embeddings ({max_positions})"
        )


class _Stages:
    """Runs stages through the content-keyed cache and records what each did."""

    def __init__(self, use_cache: bool) -> None:
        self.cache = cache.StageCache(enabled=use_cache)
        self.records: list[StageRecord] = []

    def run(self, name: str, key: str, detail: str, work: Any) -> tuple[Path, dict[str, Any]]:
        path = self.cache.path(name, key)
        found = self.cache.lookup(name, key)
        if found is not None:
            progress.info(f"[dim]{name}: reusing cached result ({path.name})[/]")
            self.records.append(
                StageRecord(name=name, seconds=0.0, cached=True, key=key, detail=found["result"])
            )
            return path, found["result"]
        start = time.perf_counter()
        hostinfo.release_memory()  # what earlier stages freed must not count against this one
        hostinfo.reset_peak_rss()
        with progress.stage(name, detail) as note:
            result = work(path)
            note["note"] = result.pop("_note", "")
        seconds = round(time.perf_counter() - start, 2)
        # A stage that ran work in a child process reports that child's peak as well.
        peak = max(hostinfo.peak_rss_mb(), float(result.get("child_peak_rss_mb") or 0.0))
        self.cache.commit(name, key, {"result": result, "seconds": seconds})
        self.records.append(
            StageRecord(
                name=name,
                seconds=seconds,
                cached=False,
                key=key,
                peak_rss_mb=peak,
                detail=result,
            )
        )
        return path, result


@dataclass
class ExportPlan:
    """Everything `mobq export` will do, resolved and keyed before any stage runs."""

    request: ExportRequest
    source: Source
    config: Any
    family: Any
    settings: Settings
    options: QuantOptions
    export_options: ExportOptions
    out: Path
    tokenizer_dir: Path
    runtime_md: metadata.RuntimeMetadata
    keys: dict[str, str]
    weights_bytes: int
    multimodal: bool = False

    @property
    def scheme(self) -> Any:
        return check_scheme_name(self.settings.scheme)

    @property
    def threshold(self) -> float:
        given = self.request.min_sqnr_db
        return given if given is not None else self.scheme.min_sqnr_db

    def fully_cached(self) -> bool:
        stage_cache = cache.StageCache(enabled=self.request.use_cache)
        return all(stage_cache.is_complete(stage, key) for stage, key in self.keys.items())


def plan_export(request: ExportRequest) -> ExportPlan:
    """Validate, resolve the source, derive metadata and compute every stage's cache key."""
    if request.out is not None:  # a killed run's leftovers go first, even if this run fails early
        _clean_stale(Path(request.out).parent)
    _check_request(request)
    if request.out is not None:
        fsutil.prepare_output_dir(Path(request.out), force=request.force)
    source = resolve_source(request)
    config = load_config(source.path)
    family = family_for_config(config, f"{source.path}/config.json")
    settings = resolve_settings(request, source)
    scheme = check_scheme_name(settings.scheme)
    options = QuantOptions(settings.group_size, settings.hqq)
    out = Path(request.out) if request.out is not None else default_out(source, settings)
    fsutil.prepare_output_dir(out, force=request.force)
    check_ctx(settings.ctx, getattr(text_config(config), "max_position_embeddings", None))
    multimodal = untie_stage.needs_text_decoder(config, family) and not request.text_only
    if scheme.quantized:  # a scheme or override that cannot apply fails before any stage runs
        exported = config if multimodal else untie_stage.exported_config(config, family)
        modules = quantize_stage.quantizable_modules(exported)
        quantize_stage.make_plan(modules, scheme, options, settings.overrides)
    export_options = ExportOptions(
        ctx=settings.ctx, max_seq_len=request.max_seq_len, extended_ops=request.extended_ops
    )
    # Family limits on ctx (e.g. LongRoPE's switch point) fail here, not after quantizing.
    llama_builder.check_longrope_ctx(convert_stage.derive_params(config, family), export_options)
    use_given = request.tokenizer and not request.random_weights
    tokenizer_dir = Path(request.tokenizer) if use_given else source.path
    runtime_md = metadata.derive(source.path, tokenizer_dir, config)
    keys = _stage_keys(
        source, family, settings, options, export_options, runtime_md, request, multimodal
    )
    return ExportPlan(
        request,
        source,
        config,
        family,
        settings,
        options,
        export_options,
        out,
        tokenizer_dir,
        runtime_md,
        keys,
        _weights_bytes(source.path),
        multimodal,
    )


def _stage_keys(
    source: Source,
    family: Any,
    settings: Settings,
    options: QuantOptions,
    export_options: ExportOptions,
    runtime_md: metadata.RuntimeMetadata,
    request: ExportRequest,
    multimodal: bool = False,
) -> dict[str, str]:
    """Each stage's key hashes its input's key, its options and the package versions it depends on."""
    versions = hostinfo.versions()
    scheme = check_scheme_name(settings.scheme)
    source_key = cache.stage_key("source", fingerprint=cache.directory_fingerprint(source.path))
    keys = {
        "untie": cache.stage_key(
            "untie", input=source_key, multimodal=multimodal, v=PIPELINE_VERSION
        )
    }
    convert_input = keys["untie"]
    if scheme.quantized:
        keys["quantize"] = cache.stage_key(
            "quantize",
            input=keys["untie"],
            scheme=settings.scheme,
            group=options.group_size,
            hqq=options.hqq,
            overrides=[(o.pattern, o.scheme) for o in settings.overrides],
            torchao=versions["torchao"],
            v=PIPELINE_VERSION,
        )
        convert_input = keys["quantize"]
    if family.exporter == "llama":
        keys["convert"] = cache.stage_key(
            "convert", input=convert_input, family=family.name, v=PIPELINE_VERSION
        )
        convert_input = keys["convert"]
    threshold = request.min_sqnr_db if request.min_sqnr_db is not None else scheme.min_sqnr_db
    keys["export"] = cache.stage_key(
        "export",
        input=convert_input,
        exporter="multimodal" if multimodal else family.exporter,
        ctx=export_options.ctx,
        seq=export_options.seq_len,
        extended_ops=export_options.extended_ops,
        methods=runtime_md.pte_constant_methods(),
        executorch=versions["executorch"],
        torch=versions["torch"],
        threshold=threshold,
        v=PIPELINE_VERSION,
    )
    return keys


def export_model(request: ExportRequest) -> tuple[Path, Manifest]:
    """The whole pipeline; returns the output directory and its manifest."""
    return run_plan(plan_export(request))


def run_plan(plan: ExportPlan) -> tuple[Path, Manifest]:
    request, source, settings, options, keys = (
        plan.request,
        plan.source,
        plan.settings,
        plan.options,
        plan.keys,
    )
    for directory in (plan.out.parent, cache.cache_root() / "stages"):
        _clean_stale(directory)
    fsutil.ensure_free_disk(
        cache.cache_root(), 3 * plan.weights_bytes, "the intermediate checkpoints"
    )
    fsutil.ensure_free_disk(plan.out.parent, plan.weights_bytes, "the exported program")
    stages = _Stages(request.use_cache)

    _, untie_result = stages.run(
        "untie",
        keys["untie"],
        "embedding / lm_head" + (", whole multimodal model" if plan.multimodal else ""),
        lambda p: _untie(source.path, p, plan.multimodal),
    )
    untied_dir = Path(untie_result["path"])
    quant_result: dict[str, Any] | None = None
    convert_input = untied_dir
    if "quantize" in keys:
        detail = f"{settings.scheme} (group {options.group_size}{', HQQ' if options.hqq else ''})"
        convert_input, quant_result = stages.run(
            "quantize",
            keys["quantize"],
            detail,
            lambda p: _quantize(untied_dir, p, settings, options),
        )
    if "convert" in keys:
        converted_dir, convert_result = stages.run(
            "convert",
            keys["convert"],
            f"{plan.family.name} keys -> ExecuTorch llama layout",
            lambda p: _convert(convert_input, p),
        )
        params = convert_result["params"]
        exporter, export_detail = "llama", "KV cache + custom SDPA"
    else:  # an `hf` family: transformers' module is exported in its own layout
        converted_dir = convert_input
        params = convert_stage.derive_params(plan.config, plan.family)
        exporter, export_detail = "hf", "transformers module + static KV cache"
        if plan.multimodal:
            exporter = "multimodal"
            export_detail = "vision encoder + token embedding + text decoder, static KV cache"
    quantized = "quantize" in keys
    reference_name = (
        f"eager {settings.scheme} model (transformers + torchao)"
        if quantized
        else "transformers fp32 model"
    )
    program_dir, export_result = stages.run(
        "export",
        keys["export"],
        f"XNNPACK, ctx {plan.export_options.ctx}, {export_detail}",
        lambda p: _export_and_verify(
            exporter,
            converted_dir,
            p,
            plan.export_options,
            plan.runtime_md.pte_constant_methods(),
            convert_input if quantized else untied_dir,
            plan.tokenizer_dir,
            reference_name,
            plan.threshold,
            plan.runtime_md,
            untied_dir if plan.multimodal else None,
            float_dir=untied_dir if quantized else None,
        ),
    )
    manifest = _assemble(
        plan.out,
        request,
        source,
        plan.config,
        plan.family.name,
        settings,
        plan.export_options,
        plan.runtime_md,
        quant_result,
        params,
        export_result,
        program_dir,
        plan.tokenizer_dir,
        stages.records,
    )
    return plan.out, manifest


def _weights_bytes(directory: Path) -> int:
    from mobq.checkpoint import checkpoint_bytes

    try:
        return checkpoint_bytes(directory)
    except Exception:  # unreadable weights surface with a clear error in the first stage
        return 0


def _untie(model_dir: Path, out: Path, multimodal: bool) -> dict[str, Any]:
    result = untie_stage.run(model_dir, out, multimodal=multimodal)
    data = result.to_dict()
    data["_note"] = (
        "lm_head now has its own weight" if result.was_tied else "not tied: nothing to do"
    )
    return data


def _quantize(
    model_dir: Path, out: Path, settings: Settings, options: QuantOptions
) -> dict[str, Any]:
    result = quantize_stage.run(model_dir, out, settings.scheme, options, settings.overrides)
    data = result.to_dict()
    data["_note"] = f"{result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB"
    return data


def _convert(model_dir: Path, out: Path) -> dict[str, Any]:
    result = convert_stage.run(model_dir, out)
    data = result.to_dict()
    data["_note"] = f"{result.tensors} tensors, params.json derived"
    return data


def _export_and_verify(
    exporter: str,
    converted_dir: Path,
    out: Path,
    options: ExportOptions,
    methods: dict[str, Any],
    reference_dir: Path,
    tokenizer_dir: Path,
    reference_name: str,
    threshold: float,
    runtime_md: metadata.RuntimeMetadata,
    multimodal_dir: Path | None = None,
    float_dir: Path | None = None,
) -> dict[str, Any]:
    """Export and verify as one cached unit: a cached program is always a verified one.

    `float_dir`: the unquantized checkpoint, for the like-with-like gate (verify.py).
    """
    out.mkdir(parents=True, exist_ok=True)
    pte = out / "model.pte"
    # The tokenizer the apps' runner will read, checked against transformers before lowering.
    runner_tokenizer = out / "tokenizer.json"
    tokenizer_changes = metadata.write_runner_tokenizer(tokenizer_dir, runner_tokenizer)
    # Lowering runs in a child process: what torch.export keeps alive ends with it, and verify
    # starts from a parent that never held the traced model.
    exported, child_peak = isolate.export_in_child(exporter, converted_dir, pte, options, methods)
    bos_id = runtime_md.bos_id if runtime_md.add_bos else None
    extra: dict[str, Any] = {}
    try:
        with progress.stage("verify", reference_name):
            if multimodal_dir is not None:
                spec = image_spec(multimodal_dir, load_config(multimodal_dir))
                result, figures = verify_multimodal.run(
                    pte,
                    reference_dir,
                    tokenizer_dir,
                    spec,
                    reference_name=reference_name,
                    threshold_db=threshold,
                    bos_id=bos_id,
                    runner_tokenizer=runner_tokenizer,
                )
                extra = {"image": spec.to_dict(), "multimodal_verification": figures}
            else:
                result = verify_stage.run(
                    pte,
                    reference_dir,
                    tokenizer_dir,
                    reference_name=reference_name,
                    threshold_db=threshold,
                    prompt_format=runtime_md.prompt_format,
                    bos_id=bos_id,
                    max_prefill=options.seq_len - 1,
                    ctx=options.ctx,
                    runner_tokenizer=runner_tokenizer,
                    float_dir=float_dir,
                )
            progress.info(
                f"logit SQNR min {result.sqnr_db_min:.1f} dB / mean {result.sqnr_db_mean:.1f} dB, "
                f"top-1 agreement {result.top1_agreement:.0%}, runner generated {result.runner_tokens} tokens"
            )
            if result.float_comparison is not None and result.sqnr_db_min < result.threshold_db:
                progress.info(f"gate: {result.gate}")
        (verify_multimodal if multimodal_dir is not None else verify_stage).require_pass(result)
    except BaseException:
        fsutil.remove(out)
        raise
    verification = {**result.to_dict(), **extra.get("multimodal_verification", {})}
    return {
        **exported.to_dict(),
        "child_peak_rss_mb": round(child_peak, 1),
        "pte": str(pte),
        "verification": verification,
        "image": extra.get("image"),
        "runner_tokenizer_changes": tokenizer_changes,
        "_note": f"{exported.bytes / 1e6:.1f} MB, verified",
    }


def _assemble(
    out: Path,
    request: ExportRequest,
    source: Source,
    config: Any,
    family: str,
    settings: Settings,
    options: ExportOptions,
    runtime_md: metadata.RuntimeMetadata,
    quant_result: dict[str, Any] | None,
    params: dict[str, Any],
    export_result: dict[str, Any],
    program_dir: Path,
    tokenizer_dir: Path,
    records: list[StageRecord],
) -> Manifest:
    with fsutil.atomic_path(out, is_dir=True) as tmp:
        fsutil.link_or_copy(program_dir / "model.pte", tmp / "model.pte")
        files = [file_entry(tmp, "model.pte", "program")]
        for name in TOKENIZER_FILES:
            # tokenizer.json is the runner's checked copy from the export stage; the rest as given.
            origin = program_dir if (program_dir / name).is_file() else Path(tokenizer_dir)
            if (origin / name).is_file():
                shutil.copyfile(origin / name, tmp / name)
                files.append(file_entry(tmp, name, name.rsplit(".", 1)[0]))
        fmt = runtime_md.prompt_format
        manifest = Manifest(
            mobq_version=hostinfo.versions()["mobq"],
            model=ModelInfo(
                name=source.display_name,
                family=family,
                architecture=(getattr(config, "architectures", None) or ["?"])[0],
                source=source.describe(),
                params=params,
                parameters=_parameter_count(params),
            ),
            export=ExportInfo(
                scheme=settings.scheme,
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
                chat_format=fmt,
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
        manifest.write(tmp)
    return manifest


def _parameter_count(params: dict[str, Any]) -> int:
    dim, layers, vocab = params["dim"], params["n_layers"], params["vocab_size"]
    head_dim, heads, kv = params["head_dim"], params["n_heads"], params["n_kv_heads"]
    attention = dim * head_dim * (heads + 2 * kv) + heads * head_dim * dim
    mlp = 3 * dim * params["hidden_dim"]
    return layers * (attention + mlp) + 2 * vocab * dim
