"""`mobq sweep`: a release matrix (models x schemes x context lengths) on Ray.

Each cell is a Ray task that calls the same stage functions as `mobq export` / `bench` /
`eval` and asks Ray for the memory and CPUs its export is estimated to need, so one machine
runs small models side by side and a 4B export alone, and a cluster spreads them. Nothing
here schedules by hand: Ray does. A failed cell reports its one-line error and the others go on.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mobq import hostinfo, resources
from mobq.errors import InputError, MobqError, ResourceError

Status = Literal["queued", "running", "done", "cached", "failed"]
STEPS = ("export", "bench", "eval")
EXPORT_OPTIONS = {
    "random_weights", "seed", "group_size", "hqq", "overrides", "tokenizer", "revision", "min_sqnr_db",
    "max_seq_len",
}  # fmt: skip


class SweepPlan(BaseModel):
    """plan.yaml, loaded strictly: an unknown key names the file, the key and the allowed keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(min_length=1)
    schemes: list[str] = Field(default_factory=lambda: ["8da4w"], min_length=1)
    ctx: list[int] = Field(default_factory=lambda: [1024], min_length=1)
    steps: list[Literal["export", "bench", "eval"]] = Field(default_factory=lambda: ["export"])
    options: dict[str, Any] = Field(
        default_factory=dict, description="mobq export options for every job"
    )
    bench: dict[str, Any] = Field(default_factory=dict, description="mobq bench options")
    eval: dict[str, Any] = Field(default_factory=dict, description="mobq eval options")

    @field_validator("schemes")
    @classmethod
    def _known_schemes(cls, value: list[str]) -> list[str]:
        from mobq.schemes import check_scheme_name

        for name in value:
            check_scheme_name(name)
        return value

    @field_validator("ctx")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(c <= 0 for c in value):
            raise ValueError(f"context lengths must be positive, got {value}")
        return value

    @field_validator("options")
    @classmethod
    def _export_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - EXPORT_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown export option(s) {unknown}; allowed: {', '.join(sorted(EXPORT_OPTIONS))}"
            )
        return value


def load_plan(path: Path) -> SweepPlan:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"no such plan file: {path}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"plan {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise InputError(
            f"plan {path} must be a mapping with at least 'models', got {type(raw).__name__}"
        )
    try:
        plan = SweepPlan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(SweepPlan.model_fields)
            raise InputError(
                f"plan {path}: unknown key '{where}'; allowed keys: {allowed}"
            ) from exc
        raise InputError(f"plan {path}: {where}: {first['msg']}") from exc
    except MobqError as exc:
        raise InputError(f"plan {path}: {exc}") from exc
    return plan


@dataclass
class Job:
    model: str
    scheme: str
    ctx: int
    name: str
    out: str
    steps: list[str]
    options: dict[str, Any]
    bench: dict[str, Any]
    eval: dict[str, Any]
    cpus: int
    estimate: dict[str, Any] | None
    memory_bytes: int


@dataclass
class JobResult:
    name: str
    model: str
    scheme: str
    ctx: int
    status: Status
    out: str
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_name(model: str, scheme: str, ctx: int) -> str:
    stem = Path(model.rstrip("/")).name if ("/" in model and Path(model).exists()) else model
    stem = stem.split("/")[-1] if "/" in stem else stem
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-").lower() or "model"
    return f"{slug}-{scheme}-ctx{ctx}"


def join_out(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root) / name)


def expand(plan: SweepPlan, out_root: str, cpus_per_job: int) -> list[Job]:
    jobs = []
    for model, scheme, ctx in itertools.product(plan.models, plan.schemes, plan.ctx):
        name = cell_name(model, scheme, ctx)
        try:
            estimate = resources.estimate(resources.architecture_of(model), scheme)
            memory = estimate.export_peak_bytes
            described: dict[str, Any] | None = estimate.to_dict()
        except MobqError:
            described, memory = None, resources.EXPORT_FIXED_BYTES  # the job itself will report why
        steps = ["export", *[s for s in plan.steps if s != "export"]]
        jobs.append(
            Job(model, scheme, ctx, name, join_out(out_root, name), steps, dict(plan.options), dict(plan.bench),
                dict(plan.eval), cpus_per_job, described, memory)
        )  # fmt: skip
    names = [j.name for j in jobs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise InputError(
            f"two models give the same cell name {sorted(duplicates)}: rename one directory"
        )
    return jobs


def schedule_preview(
    jobs: list[Job], memory_bytes: int, cpus: int
) -> tuple[list[list[Job]], list[Job]]:
    """Waves of jobs that fit together in `memory_bytes` and `cpus` (what Ray will do, roughly),
    and the jobs too large to run at all."""
    too_large = [j for j in jobs if j.memory_bytes > memory_bytes]
    waves: list[list[Job]] = []
    pending = sorted((j for j in jobs if j not in too_large), key=lambda j: -j.memory_bytes)
    while pending:
        wave: list[Job] = []
        used_memory = used_cpus = 0
        for job in list(pending):
            if used_memory + job.memory_bytes <= memory_bytes and used_cpus + job.cpus <= cpus:
                wave.append(job)
                used_memory += job.memory_bytes
                used_cpus += job.cpus
                pending.remove(job)
        if not wave:  # more CPUs asked than exist: it still runs, alone
            wave = [pending.pop(0)]
        waves.append(wave)
    return waves, too_large


# ------------------------------------------------------------------- one job (runs inside a Ray task)


def _is_remote(out: str) -> bool:
    return "://" in out and not out.startswith("file://")


def _local_path(out: str) -> Path:
    return Path(out[len("file://") :]) if out.startswith("file://") else Path(out)


def run_job(job: Job) -> JobResult:
    """Export (always verified), then the optional steps; a user error fails only this cell."""
    import torch

    torch.set_num_threads(max(1, job.cpus))
    start = time.perf_counter()
    result = JobResult(job.name, job.model, job.scheme, job.ctx, "running", job.out)
    try:
        with tempfile.TemporaryDirectory(prefix="mobq-sweep-") as scratch:
            local = Path(scratch) / job.name if _is_remote(job.out) else _local_path(job.out)
            result.status, result.figures = _export_step(job, local)
            for step in job.steps[1:]:
                result.figures.update(STEP_RUNNERS[step](job, local))
            if _is_remote(job.out):
                _upload(local, job.out)
    except MobqError as exc:
        result.status, result.error = "failed", str(exc)
    result.seconds = round(time.perf_counter() - start, 1)
    return result


def _export_step(job: Job, out: Path) -> tuple[Status, dict[str, Any]]:
    from mobq.pipeline import ExportRequest, plan_export, run_plan

    options = {k: v for k, v in job.options.items() if k != "overrides"}
    request = ExportRequest(
        model=job.model, out=out, scheme=job.scheme, ctx=job.ctx, force=True,
        overrides=list(job.options.get("overrides", [])), **options,
    )  # fmt: skip
    plan = plan_export(request)
    existing = _finished_manifest(out, plan.keys["export"])
    if existing is not None:
        return "cached", _export_figures(existing)
    _, manifest = run_plan(plan)
    status: Status = "cached" if all(s.cached for s in manifest.stages) else "done"
    return status, _export_figures(manifest)


def _finished_manifest(out: Path, export_key: str) -> Any:
    """A complete, verified export of exactly these inputs already in place (its files intact)."""
    from mobq.manifest import load_manifest

    try:
        manifest = load_manifest(out)
        for entry in manifest.files:
            manifest.checked_path(out, entry.role)
    except MobqError:
        return None
    keys = {s.name: s.key for s in manifest.stages}
    return (
        manifest
        if keys.get("export") == export_key and manifest.verification.get("passed")
        else None
    )


def _export_figures(manifest: Any) -> dict[str, Any]:
    verification = manifest.verification
    export_stage = next((s for s in manifest.stages if s.name == "export"), None)
    return {
        "program_mb": round(manifest.file("program").bytes / 1e6, 1),
        "sqnr_db_min": verification.get("sqnr_db_min"),
        "top1_agreement": verification.get("top1_agreement"),
        "export_seconds": export_stage.seconds if export_stage else None,
        "export_peak_rss_mb": export_stage.peak_rss_mb if export_stage else None,
    }


BENCH_FILE = "bench.json"
EVAL_FILE = "eval.json"


def _options(step: str, cls: Any, given: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """plan.yaml's `bench:` / `eval:` mappings, checked like the CLI flags they mirror."""
    import dataclasses
    import inspect

    allowed = (
        [f.name for f in dataclasses.fields(cls)]
        if dataclasses.is_dataclass(cls)
        else [n for n in inspect.signature(cls).parameters if n != "export_dir"]
    )
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(
            f"plan.yaml {step}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return {**defaults, **given}


def _bench_step(job: Job, out: Path) -> dict[str, Any]:
    """`mobq bench` on the cell (fresh process per configuration), saved as OUT/cell/bench.json."""
    from mobq import benchmark as bench
    from mobq import fsutil

    options = _options(
        "bench", bench.BenchConfig, job.bench,
        {"prompt_tokens": 64, "gen_tokens": 32, "threads": max(1, job.cpus), "warmup": 1, "reps": 3},
    )  # fmt: skip
    results = bench.run(out, [bench.BenchConfig(**options)])
    fsutil.write_text(
        out / BENCH_FILE,
        json.dumps([r.model_dump(mode="json") for r in results], indent=2) + "\n",
    )
    first = results[0]
    return {
        "prefill_tokens_per_sec": first.prefill_tokens_per_sec,
        "decode_tokens_per_sec": first.decode_tokens_per_sec,
        "ttft_ms": first.ttft_ms,
        "bench_peak_rss_mb": first.peak_rss_mb,
    }


def _eval_step(job: Job, out: Path) -> dict[str, Any]:
    """`mobq eval` on the cell: perplexities and top-1 agreement, saved as OUT/cell/eval.json."""
    from mobq import evaluate, fsutil

    options = _options("eval", evaluate.run, job.eval, {})
    result = evaluate.run(out, **options)
    data = result.to_dict()
    fsutil.write_text(out / EVAL_FILE, json.dumps(data, indent=2, default=str) + "\n")
    perplexity = {s["model"]: s.get("perplexity") for s in data["scores"]}
    return {
        "pte_perplexity": perplexity.get("pte"),
        **{f"agreement_{k}": v for k, v in data["agreement"].items()},
    }


STEP_RUNNERS: dict[str, Callable[[Job, Path], dict[str, Any]]] = {
    "bench": _bench_step,
    "eval": _eval_step,
}


def _upload(local: Path, url: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    fs.put(str(local), path, recursive=True)


# ------------------------------------------------------------------- the sweep


@dataclass
class SweepSummary:
    out: str
    jobs: list[JobResult]
    wall_seconds: float
    mode: str
    resources: dict[str, Any]
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "report": self.report,
            "mode": self.mode,
            "wall_seconds": self.wall_seconds,
            "resources": self.resources,
            "host": hostinfo.host(),
            "versions": hostinfo.versions(),
            "jobs": [j.to_dict() for j in self.jobs],
        }


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            "mobq sweep needs Ray: pip install 'mobq[sweep]' (make setup installs it)"
        ) from exc
    return ray


def start_ray(address: str | None, cpus: int | None) -> dict[str, Any]:
    ray = _ray()
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "configure_logging": False,
        "include_dashboard": False,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=cpus or hostinfo.host()["cores"], **kwargs)
    found = ray.cluster_resources()
    return {
        "cpus": int(found.get("CPU", 0)),
        "memory_bytes": int(found.get("memory", 0)),
        "address": address or "local",
    }


def preview_limits(address: str | None, cpus: int | None) -> dict[str, Any]:
    """What a dry run schedules against: the Ray cluster at `address`, else this host."""
    if not address:
        return {
            "cpus": cpus or hostinfo.host()["cores"],
            "memory_bytes": int(hostinfo.host()["memory_gb"] * 1e9),
        }
    limits = start_ray(address, None)
    _ray().shutdown()
    return limits


def run_sweep(
    jobs: list[Job],
    out_root: str,
    *,
    address: str | None = None,
    cpus: int | None = None,
    retries: int = 0,
    on_update: Callable[[list[JobResult]], None] | None = None,
) -> SweepSummary:
    ray = _ray()
    start = time.perf_counter()
    cluster = start_ray(address, cpus)
    try:
        results = {
            j.name: JobResult(j.name, j.model, j.scheme, j.ctx, "queued", j.out) for j in jobs
        }
        pending = _submit(ray, jobs, results, cluster, retries)
        while pending:
            _notify(on_update, results)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                name = pending.pop(ref)
                try:
                    results[name] = ray.get(ref)
                except Exception as exc:  # retries exhausted on a transient failure
                    results[name].status, results[name].error = "failed", _first_line(exc)
                    results[name].attempts = retries + 1
            _mark_running(results, pending)
    finally:
        ray.shutdown()
    summary = SweepSummary(
        out_root, list(results.values()), round(time.perf_counter() - start, 1), "ray", cluster
    )
    _notify(on_update, summary.jobs)
    summary.report = write_report(summary)
    write_summary(summary)
    return summary


def _submit(
    ray: Any, jobs: list[Job], results: dict[str, JobResult], cluster: dict[str, Any], retries: int
) -> dict[Any, str]:
    remote = ray.remote(run_job)
    pending: dict[Any, str] = {}
    for job in jobs:
        if cluster["memory_bytes"] and job.memory_bytes > cluster["memory_bytes"]:
            results[job.name].status = "failed"
            results[job.name].error = str(
                ResourceError(
                    f"needs ~{job.memory_bytes / resources.GB:.1f} GB to export; the cluster offers "
                    f"{cluster['memory_bytes'] / resources.GB:.1f} GB"
                )
            )
            continue
        ref = remote.options(
            num_cpus=job.cpus,
            memory=job.memory_bytes,
            max_retries=retries,
            retry_exceptions=True,
            name=job.name,
        ).remote(job)
        pending[ref] = job.name
    return pending


def _mark_running(results: dict[str, JobResult], pending: dict[Any, str]) -> None:
    """Ray does not say which queued task started; show the still-pending ones as running/queued."""
    for name in pending.values():
        if results[name].status == "queued":
            results[name].status = "running"


def _notify(callback: Callable[[list[JobResult]], None] | None, results: Any) -> None:
    if callback is not None:
        callback(list(results.values()) if isinstance(results, dict) else list(results))


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return " ".join(str(cause).split())[:300] or type(cause).__name__


def run_sequential(
    jobs: list[Job], out_root: str, on_update: Callable[[list[JobResult]], None] | None = None
) -> SweepSummary:
    """The same jobs one after another in this process (for comparison and for debugging)."""
    start = time.perf_counter()
    results = {j.name: JobResult(j.name, j.model, j.scheme, j.ctx, "queued", j.out) for j in jobs}
    for job in jobs:
        results[job.name].status = "running"
        _notify(on_update, results)
        results[job.name] = run_job(job)
    summary = SweepSummary(
        out_root, list(results.values()), round(time.perf_counter() - start, 1), "sequential",
        {"cpus": jobs[0].cpus if jobs else 0},
    )  # fmt: skip
    _notify(on_update, summary.jobs)
    summary.report = write_report(summary)
    write_summary(summary)
    return summary


def write_report(summary: SweepSummary) -> str | None:
    """`mobq report` over every cell's bench.json, into OUT/report/ (None when nothing was benched)."""
    from mobq import report

    def fetch(job: JobResult, into: Path) -> Path | None:
        source = join_out(job.out, BENCH_FILE)
        if not _is_remote(source):
            return _local_path(source) if _local_path(source).is_file() else None
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        if not fs.exists(path):
            return None
        fs.get(path, str(into / f"{job.name}.json"))
        return into / f"{job.name}.json"

    with tempfile.TemporaryDirectory(prefix="mobq-report-") as scratch:
        found = [p for j in summary.jobs if j.status != "failed" and (p := fetch(j, Path(scratch)))]
        if not found:
            return None
        target = join_out(summary.out, "report")
        local = Path(scratch) / "report" if _is_remote(target) else _local_path(target)
        report.report(found, local, force=True)
        if _is_remote(target):
            _upload(local, target)
    return target


def write_summary(summary: SweepSummary) -> str:
    text = json.dumps(summary.to_dict(), indent=2, default=str) + "\n"
    target = join_out(summary.out, "summary.json")
    if _is_remote(target):
        import fsspec

        with fsspec.open(target, "w") as handle:
            handle.write(text)
    else:
        from mobq import fsutil

        fsutil.write_text(_local_path(target), text)
    return target
