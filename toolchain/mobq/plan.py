"""Resolve once: the request, the recipe and the model's config -> one `ExportPlan`.

Every choice of `mobq export` is validated here, before anything is built: the scheme
(carried on as a `Scheme`, never re-checked by name), the quantization plan, the context
length, the output directory and each stage's cache key. The stages only read the plan.
Precedence of each setting: mobq default < recipe < CLI flag; the plan records which won.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobq import cache, fsutil, hostinfo, metadata, progress
from mobq.convert import derive_params
from mobq.errors import InputError
from mobq.families import Family, family_for_config, text_config
from mobq.hfmodel import load_config
from mobq.pte import llama as llama_builder
from mobq.pte.lowering import ExportOptions
from mobq.quantize import Override, QuantPlan, make_plan, quantizable_modules
from mobq.recipes import RecipeDefaults
from mobq.schemes import SCHEMES, QuantOptions, Scheme, check_scheme_name
from mobq.source import Source, resolve
from mobq.untie import exported_config, needs_text_decoder

PIPELINE_VERSION = "3"  # 3: one lowering (mobq.pte), like-with-like gate; 2: runner tokenizer
# The export stage alone: bumping it keeps the untie/quantize/convert caches.
PROGRAM_VERSION = "3"  # 3: norms delegated (pte.delegable); 2: the KV cache transposes fused
# The one set of defaults: what a recipe that sets nothing gets, and a model without a recipe.
DEFAULTS = RecipeDefaults()


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


@dataclass(frozen=True)
class Settings:
    """The effective choices and where each came from (default < recipe < CLI)."""

    scheme: Scheme
    ctx: int
    group_size: int
    hqq: bool
    overrides: list[Override]
    provenance: dict[str, str]


@dataclass
class ExportPlan:
    """Everything `mobq export` will do, resolved and keyed before any stage runs."""

    request: ExportRequest
    source: Source
    config: Any
    family: Family
    settings: Settings
    options: QuantOptions
    quant_plan: QuantPlan | None  # None: a float scheme, no quantize stage
    export_options: ExportOptions
    out: Path
    tokenizer_dir: Path
    runtime_md: metadata.RuntimeMetadata
    keys: dict[str, str]
    weights_bytes: int
    multimodal: bool = False

    @property
    def scheme(self) -> Scheme:
        return self.settings.scheme

    @property
    def explicit_gate(self) -> bool:
        """--min-sqnr given: the threshold alone decides verification."""
        return self.request.min_sqnr_db is not None

    @property
    def threshold(self) -> float:
        return _threshold(self.request, self.scheme)

    @property
    def first_layer_threshold(self) -> float | None:
        """The first-layer check's gate (mobq.first_layer) for a quantized llama program of at
        least MIN_MODEL_LAYERS layers, else None (no check). An explicit --min-sqnr lower than
        the gate lowers it too: the user's floor for the whole program holds for its layer 0."""
        from mobq.first_layer import MIN_MODEL_LAYERS, THRESHOLD_DB

        if not self.scheme.quantized or self.exporter != "llama":
            return None
        if text_config(self.config).num_hidden_layers < MIN_MODEL_LAYERS:
            return None
        if self.request.min_sqnr_db is not None:
            return min(THRESHOLD_DB, self.request.min_sqnr_db)
        return THRESHOLD_DB

    @property
    def exporter(self) -> str:
        """The builder of the program (mobq.pte.BUILDERS)."""
        return "multimodal" if self.multimodal else self.family.exporter

    def fully_cached(self) -> bool:
        stage_cache = cache.StageCache(enabled=self.request.use_cache)
        return all(stage_cache.is_complete(stage, key) for stage, key in self.keys.items())


def plan_export(request: ExportRequest) -> ExportPlan:
    """Validate, resolve the source, derive metadata and compute every stage's cache key."""
    if request.out is not None:  # a killed run's leftovers go first, even if this run fails early
        clean_stale(Path(request.out).parent)
    cli_overrides = _check_request(request)
    if request.out is not None:
        fsutil.prepare_output_dir(Path(request.out), force=request.force)
    source = resolve_source(request)
    config = load_config(source.path)
    family = family_for_config(config, f"{source.path}/config.json")
    settings = resolve_settings(request, source, cli_overrides)
    options = QuantOptions(settings.group_size, settings.hqq)
    out = Path(request.out) if request.out is not None else default_out(source, settings)
    fsutil.prepare_output_dir(out, force=request.force)
    _check_ctx_fits(settings.ctx, config)
    multimodal = needs_text_decoder(config, family) and not request.text_only
    quant_plan = _quant_plan(config, family, settings, options, multimodal)
    export_options = _export_options(request, settings.ctx)
    # Family limits on ctx (e.g. LongRoPE's switch point) fail here, not after quantizing.
    llama_builder.check_longrope_ctx(derive_params(config, family), export_options)
    use_given = request.tokenizer and not request.random_weights
    tokenizer_dir = Path(request.tokenizer) if use_given else source.path
    runtime_md = metadata.derive(source.path, tokenizer_dir, config)
    plan = ExportPlan(
        request=request,
        source=source,
        config=config,
        family=family,
        settings=settings,
        options=options,
        quant_plan=quant_plan,
        export_options=export_options,
        out=out,
        tokenizer_dir=tokenizer_dir,
        runtime_md=runtime_md,
        keys={},
        weights_bytes=_weights_bytes(source.path),
        multimodal=multimodal,
    )
    plan.keys = stage_keys(plan)
    return plan


def _check_request(request: ExportRequest) -> list[Override]:
    """Flag-level mistakes fail before anything is downloaded or built; the parsed overrides."""
    if request.scheme is not None:
        check_scheme_name(request.scheme)
    if request.ctx is not None:
        _check_ctx_positive(request.ctx)
    overrides = [Override.parse(text) for text in request.overrides]
    if request.group_size is not None:
        QuantOptions(group_size=request.group_size)
    return overrides


def _check_ctx_positive(ctx: int) -> None:
    if ctx <= 0:
        raise InputError(f"--ctx must be a positive number of tokens, got {ctx}")


def _check_ctx_fits(ctx: int, config: Any) -> None:
    """The resolved ctx against the model (a flag was checked positive in _check_request, a
    recipe's ctx when the recipe loaded)."""
    max_positions = getattr(text_config(config), "max_position_embeddings", None)
    if max_positions and ctx > max_positions:
        raise InputError(
            f"--ctx {ctx} exceeds the model's max_position_embeddings ({max_positions})"
        )


def _export_options(request: ExportRequest, ctx: int) -> ExportOptions:
    if request.max_seq_len is not None and not 0 < request.max_seq_len <= ctx:
        raise InputError(f"--max-seq-len must be in 1..ctx ({ctx}), got {request.max_seq_len}")
    return ExportOptions(
        ctx=ctx, max_seq_len=request.max_seq_len, extended_ops=request.extended_ops
    )


def _quant_plan(
    config: Any, family: Family, settings: Settings, options: QuantOptions, multimodal: bool
) -> QuantPlan | None:
    """A scheme or override that cannot apply to this model fails before any stage runs."""
    if not settings.scheme.quantized:
        return None
    exported = config if multimodal else exported_config(config, family)
    modules = quantizable_modules(exported)
    return make_plan(modules, settings.scheme, options, settings.overrides)


def resolve_settings(
    request: ExportRequest, source: Source, cli_overrides: list[Override]
) -> Settings:
    recipe = source.recipe
    provenance: dict[str, str] = {}

    def pick(name: str, cli: Any) -> Any:
        if cli is not None:
            provenance[name] = "cli"
            return cli
        if recipe is not None:
            provenance[name] = f"recipe {recipe.name}"
            return getattr(recipe.defaults, name)
        provenance[name] = "mobq default"
        return getattr(DEFAULTS, name)

    # Names are checked where they enter: the flag in _check_request, a recipe's on loading.
    scheme = SCHEMES[pick("scheme", request.scheme)]
    ctx = pick("ctx", request.ctx)
    group_size = pick("group_size", request.group_size)
    hqq = pick("hqq", request.hqq)
    overrides = list(cli_overrides)
    if recipe is not None:
        overrides += [
            Override(o.pattern, o.scheme, f"recipe {recipe.name}") for o in recipe.overrides
        ]
    return Settings(scheme, ctx, group_size, hqq, overrides, provenance)


def default_out(source: Source, settings: Settings) -> Path:
    return Path("exports") / f"{source.display_name}-{settings.scheme.name}-ctx{settings.ctx}"


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


def clean_stale(directory: Path) -> None:
    for stale in fsutil.clean_stale_temporaries(directory):
        progress.info(f"[dim]removed {stale.name}, left by an interrupted run[/]")


def _threshold(request: ExportRequest, scheme: Scheme) -> float:
    return request.min_sqnr_db if request.min_sqnr_db is not None else scheme.min_sqnr_db


def _weights_bytes(directory: Path) -> int:
    from mobq.checkpoint import checkpoint_bytes

    try:
        return checkpoint_bytes(directory)
    except Exception:  # unreadable weights surface with a clear error in the first stage
        return 0


def stage_keys(plan: ExportPlan) -> dict[str, str]:
    """Each stage's key hashes its input's key, its options and the package versions it depends on."""
    versions = hostinfo.versions()
    settings, options = plan.settings, plan.options
    source_key = cache.stage_key(
        "source", fingerprint=cache.directory_fingerprint(plan.source.path)
    )
    keys = {
        "untie": cache.stage_key(
            "untie", input=source_key, multimodal=plan.multimodal, v=PIPELINE_VERSION
        )
    }
    convert_input = keys["untie"]
    if settings.scheme.quantized:
        keys["quantize"] = cache.stage_key(
            "quantize",
            input=keys["untie"],
            scheme=settings.scheme.name,
            group=options.group_size,
            hqq=options.hqq,
            overrides=[(o.pattern, o.scheme) for o in settings.overrides],
            torchao=versions["torchao"],
            v=PIPELINE_VERSION,
        )
        convert_input = keys["quantize"]
    if plan.family.exporter == "llama":
        keys["convert"] = cache.stage_key(
            "convert", input=convert_input, family=plan.family.name, v=PIPELINE_VERSION
        )
        convert_input = keys["convert"]
    keys["export"] = cache.stage_key(
        "export",
        input=convert_input,
        exporter=plan.exporter,
        ctx=plan.export_options.ctx,
        seq=plan.export_options.seq_len,
        extended_ops=plan.export_options.extended_ops,
        methods=plan.runtime_md.pte_constant_methods(),
        executorch=versions["executorch"],
        torch=versions["torch"],
        threshold=plan.threshold,
        v=PIPELINE_VERSION,
        program=PROGRAM_VERSION,
        lowering=lowering_digest(),
        # Only where the check runs, so the keys of other programs stay as they were.
        **_first_layer_key(plan),
    )
    return keys


def source_digest(package: Path) -> str:
    """A digest of a package's Python sources, file names included."""
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def lowering_digest() -> str:
    """The export stage's own code (mobq.pte) in its cache key: a program lowered by other
    code is never reused, whether or not PROGRAM_VERSION was bumped. A lowering variant tried
    from another checkout once served its (rejected) program from the cache to the next
    export of the main code."""
    import mobq.pte

    return source_digest(Path(mobq.pte.__file__).parent)


def _first_layer_key(plan: ExportPlan) -> dict[str, Any]:
    """A program verified without the first-layer check (or at another gate) is not reused."""
    threshold = plan.first_layer_threshold
    return {} if threshold is None else {"first_layer_db": threshold}
