"""`mobq export`: plan, run the stages in order (each cached by content), assemble.

plan (mobq.plan) -> untie -> quantize -> convert -> export + verify -> assemble
(mobq.manifest). `hf` families skip convert: transformers' own module is exported, in its
own layout. The output directory is assembled under a temporary name and renamed into place
only after verification passed, so an interrupted or failed run leaves no `model.pte` that
looks finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobq import cache, first_layer, fsutil, hostinfo, metadata, progress
from mobq import verify as verify_stage
from mobq.convert import convert_checkpoint, derive_params
from mobq.hfmodel import load_config
from mobq.manifest import Manifest, StageRecord, assemble
from mobq.plan import ExportPlan, ExportRequest, clean_stale, plan_export
from mobq.pte import isolate, verify_multimodal
from mobq.pte.lowering import ExportOptions
from mobq.quantize import quantize_checkpoint
from mobq.untie import untie_checkpoint
from mobq.vision import image_spec

__all__ = ["ExportPlan", "ExportRequest", "export_model", "plan_export", "run_plan"]


@dataclass
class Outputs:
    """What the stages produced so far: each one's cache directory and result."""

    paths: dict[str, Path] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def untied(self) -> Path:
        return Path(self.results["untie"]["path"])

    @property
    def quantized(self) -> Path:
        """The checkpoint the program is made from, before convert: the verify reference."""
        return self.paths.get("quantize", self.untied)

    @property
    def converted(self) -> Path:
        return self.paths.get("convert", self.quantized)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: its cache key, what it prints and the work it does."""

    name: str
    key: str
    detail: str
    work: Callable[[ExportPlan, Outputs, Path], dict[str, Any]]


def export_model(request: ExportRequest) -> tuple[Path, Manifest]:
    """The whole pipeline; returns the output directory and its manifest."""
    return run_plan(plan_export(request))


def run_plan(plan: ExportPlan) -> tuple[Path, Manifest]:
    for directory in (plan.out.parent, cache.cache_root() / "stages"):
        clean_stale(directory)
    fsutil.ensure_free_disk(
        cache.cache_root(), 3 * plan.weights_bytes, "the intermediate checkpoints"
    )
    fsutil.ensure_free_disk(plan.out.parent, plan.weights_bytes, "the exported program")
    runner = _Runner(plan.request.use_cache)
    outputs = Outputs()
    for stage in stages(plan):
        outputs.paths[stage.name], outputs.results[stage.name] = runner.run(plan, outputs, stage)
    if "convert" in outputs.results:
        params = outputs.results["convert"]["params"]
    else:  # an `hf` family: transformers' module is exported in its own layout
        params = derive_params(plan.config, plan.family)
    manifest = assemble(
        plan,
        program_dir=outputs.paths["export"],
        export_result=outputs.results["export"],
        quant_result=outputs.results.get("quantize"),
        params=params,
        records=runner.records,
    )
    return plan.out, manifest


def stages(plan: ExportPlan) -> list[Stage]:
    """The stages this plan runs, in order: one per key in `plan.keys`."""
    keys = plan.keys
    untie_detail = "embedding / lm_head" + (", whole multimodal model" if plan.multimodal else "")
    found = [Stage("untie", keys["untie"], untie_detail, _untie)]
    if "quantize" in keys:
        hqq = ", HQQ" if plan.options.hqq else ""
        detail = f"{plan.scheme.name} (group {plan.options.group_size}{hqq})"
        found.append(Stage("quantize", keys["quantize"], detail, _quantize))
    if "convert" in keys:
        detail = f"{plan.family.name} keys -> ExecuTorch llama layout"
        found.append(Stage("convert", keys["convert"], detail, _convert))
    detail = f"XNNPACK, ctx {plan.export_options.ctx}, {_EXPORT_DETAIL[plan.exporter]}"
    found.append(Stage("export", keys["export"], detail, _export))
    return found


_EXPORT_DETAIL = {
    "llama": "KV cache + custom SDPA",
    "hf": "transformers module + static KV cache",
    "multimodal": "vision encoder + token embedding + text decoder, static KV cache",
}


class _Runner:
    """Runs stages through the content-keyed cache and records what each did."""

    def __init__(self, use_cache: bool) -> None:
        self.cache = cache.StageCache(enabled=use_cache)
        self.records: list[StageRecord] = []

    def run(self, plan: ExportPlan, outputs: Outputs, stage: Stage) -> tuple[Path, dict[str, Any]]:
        name, key = stage.name, stage.key
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
        with progress.stage(name, stage.detail) as note:
            result = stage.work(plan, outputs, path)
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


def _untie(plan: ExportPlan, outputs: Outputs, out: Path) -> dict[str, Any]:
    result = untie_checkpoint(plan.source.path, out, multimodal=plan.multimodal)
    data = result.to_dict()
    data["_note"] = (
        "lm_head now has its own weight" if result.was_tied else "not tied: nothing to do"
    )
    return data


def _quantize(plan: ExportPlan, outputs: Outputs, out: Path) -> dict[str, Any]:
    result = quantize_checkpoint(
        outputs.untied,
        out,
        plan.scheme,
        plan.options,
        plan.settings.overrides,
        plan=plan.quant_plan,
    )
    data = result.to_dict()
    data["_note"] = f"{result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB"
    return data


def _convert(plan: ExportPlan, outputs: Outputs, out: Path) -> dict[str, Any]:
    result = convert_checkpoint(outputs.quantized, out)
    data = result.to_dict()
    data["_note"] = f"{result.tensors} tensors, params.json derived"
    return data


@dataclass(frozen=True)
class ExportJob:
    """The export stage's slice of the plan, with the checkpoints the earlier stages made."""

    exporter: str
    converted_dir: Path
    options: ExportOptions
    methods: dict[str, Any]
    reference_dir: Path
    tokenizer_dir: Path
    reference_name: str
    threshold: float
    runtime_md: metadata.RuntimeMetadata
    multimodal_dir: Path | None = None  # the whole untied multimodal checkpoint
    float_dir: Path | None = None  # the unquantized checkpoint, for verify's like-with-like gate
    first_layer_db: float | None = None  # the first-layer check's gate; None: no such check


def _export(plan: ExportPlan, outputs: Outputs, out: Path) -> dict[str, Any]:
    reference_name = (
        f"eager {plan.scheme.name} model (transformers + torchao)"
        if plan.scheme.quantized
        else "transformers fp32 model"
    )
    job = ExportJob(
        exporter=plan.exporter,
        converted_dir=outputs.converted,
        options=plan.export_options,
        methods=plan.runtime_md.pte_constant_methods(),
        reference_dir=outputs.quantized,
        tokenizer_dir=plan.tokenizer_dir,
        reference_name=reference_name,
        threshold=plan.threshold,
        runtime_md=plan.runtime_md,
        multimodal_dir=outputs.untied if plan.multimodal else None,
        # An explicit --min-sqnr is a hard floor; the scheme's own gate is judged like with like.
        float_dir=outputs.untied if plan.scheme.quantized and not plan.explicit_gate else None,
        first_layer_db=plan.first_layer_threshold,
    )
    return _export_and_verify(job, out)


def _export_and_verify(job: ExportJob, out: Path) -> dict[str, Any]:
    """Export and verify as one cached unit: a cached program is always a verified one."""
    out.mkdir(parents=True, exist_ok=True)
    pte = out / "model.pte"
    # The tokenizer the apps' runner will read, checked against transformers before lowering.
    runner_tokenizer = out / "tokenizer.json"
    tokenizer_changes = metadata.write_runner_tokenizer(job.tokenizer_dir, runner_tokenizer)
    runtime_md, options = job.runtime_md, job.options
    bos_id = runtime_md.bos_id if runtime_md.add_bos else None
    checked = None
    if job.first_layer_db is not None:
        checked = _first_layer(job, job.first_layer_db, bos_id, out)
    # Lowering runs in a child process: what torch.export keeps alive ends with it, and verify
    # starts from a parent that never held the traced model.
    exported, child_peak = isolate.export_in_child(
        job.exporter, job.converted_dir, pte, job.options, job.methods
    )
    extra: dict[str, Any] = {}
    try:
        with progress.stage("verify", job.reference_name):
            if job.multimodal_dir is not None:
                spec = image_spec(job.multimodal_dir, load_config(job.multimodal_dir))
                result, figures = verify_multimodal.run(
                    pte,
                    job.reference_dir,
                    job.tokenizer_dir,
                    spec,
                    reference_name=job.reference_name,
                    threshold_db=job.threshold,
                    bos_id=bos_id,
                    runner_tokenizer=runner_tokenizer,
                )
                extra = {"image": spec.to_dict(), "multimodal_verification": figures}
            else:
                result = verify_stage.run(
                    pte,
                    job.reference_dir,
                    job.tokenizer_dir,
                    reference_name=job.reference_name,
                    threshold_db=job.threshold,
                    prompt_format=runtime_md.prompt_format,
                    bos_id=bos_id,
                    max_prefill=options.seq_len - 1,
                    ctx=options.ctx,
                    runner_tokenizer=runner_tokenizer,
                    float_dir=job.float_dir,
                )
            progress.info(
                f"logit SQNR min {result.sqnr_db_min:.1f} dB / mean {result.sqnr_db_mean:.1f} dB, "
                f"top-1 agreement {result.top1_agreement:.0%}, runner generated {result.runner_tokens} tokens"
            )
            if result.float_comparison is not None and result.sqnr_db_min < result.threshold_db:
                progress.info(f"gate: {result.gate}")
        (verify_multimodal if job.multimodal_dir is not None else verify_stage).require_pass(result)
    except BaseException:
        fsutil.remove(out)
        raise
    verification = {**result.to_dict(), **extra.get("multimodal_verification", {})}
    if checked is not None:
        verification["first_layer"] = checked.to_dict()
    return {
        **exported.to_dict(),
        "child_peak_rss_mb": round(child_peak, 1),
        "pte": str(pte),
        "verification": verification,
        "image": extra.get("image"),
        "runner_tokenizer_changes": tokenizer_changes,
        "_note": f"{exported.bytes / 1e6:.1f} MB, verified",
    }


def _first_layer(
    job: ExportJob, threshold_db: float, bos_id: int | None, out: Path
) -> first_layer.FirstLayerResult:
    """Layer 0 alone, lowered and compared with eager before the full lowering: a wrong kernel
    fails in a minute or two, not after the whole export."""
    try:
        with progress.stage("first-layer check", f"layer 0 vs {job.reference_name}") as note:
            result = first_layer.check(
                job.converted_dir,
                job.reference_dir,
                job.tokenizer_dir,
                job.options,
                job.methods,
                prompt_format=job.runtime_md.prompt_format,
                bos_id=bos_id,
                workdir=out,
                threshold_db=threshold_db,
            )
            note["note"] = (
                f"SQNR min {result.sqnr_db_min:.1f} dB (gate {result.threshold_db:g}), "
                f"top-1 {result.top1:.0%}"
            )
        first_layer.require_pass(result, job.reference_name)
    except BaseException:
        fsutil.remove(out)
        raise
    return result
