"""`mobq report`: host and device benchmark results merged into report.md and PNG charts.

Every input is validated against the result contract (mobq.results.BenchResult, the schema the
apps write), so a wrong file stops the report with its name and the field, before anything is
drawn. Charts use matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.errors import InputError
from mobq.results import BenchResult, load_results

TOKENS_CHART = "tokens_per_sec.png"
MEMORY_CHART = "memory.png"
REPORT = "report.md"
# Thermal states in rising order (Android's names, then iOS's), for a consistent colour scale.
THERMAL_ORDER = (
    "none",
    "nominal",
    "light",
    "fair",
    "moderate",
    "serious",
    "severe",
    "critical",
    "emergency",
    "shutdown",
)


@dataclass
class LoadedResult:
    path: Path
    result: BenchResult


@dataclass
class ReportResult:
    out_dir: str
    report: str
    charts: list[str] = field(default_factory=list)
    results: int = 0
    models: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def load_all(paths: list[Path]) -> list[LoadedResult]:
    if not paths:
        raise InputError("no result files given; pass one or more RESULT.json files")
    loaded = [LoadedResult(Path(p), r) for p in paths for r in load_results(Path(p))]
    if not loaded:
        raise InputError(f"the result files hold no results: {', '.join(map(str, paths))}")
    return loaded


def label(r: BenchResult) -> str:
    return f"{r.device} · {r.scheme} · ctx {r.ctx} · p{r.prompt_tokens}/g{r.generated_tokens}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "result"


# ---------------------------------------------------------------- markdown


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(loaded: list[LoadedResult], charts: dict[str, list[str]]) -> str:
    by_model: dict[str, list[LoadedResult]] = defaultdict(list)
    for item in loaded:
        by_model[item.result.model].append(item)
    lines = [
        "# mobq benchmark report",
        "",
        f"{len(loaded)} results from {len({i.path for i in loaded})} files. "
        "Figures are medians over the measured repetitions (warm-up excluded); "
        "memory is the process's peak (host: ru_maxrss, Android: VmHWM, iOS: phys_footprint).",
        "",
    ]
    for model in sorted(by_model):
        lines += [f"## {model}", "", _table(by_model[model]), ""]
    lines += ["## Charts", ""]
    for name in charts["summary"]:
        lines += [f"![{name}]({name})", ""]
    if charts["sustained"]:
        lines += [
            "### Sustained runs",
            "",
            "Decode tokens/sec over time with the thermal state the OS reported.",
            "",
        ]
        for name in charts["sustained"]:
            lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def _table(items: list[LoadedResult]) -> str:
    header = (
        "| device | source | os | scheme | ctx | prompt/gen tokens | prefill tok/s | decode tok/s "
        "| TTFT ms | load ms | peak memory MB | size MB | file |"
    )
    rows = [header, "|" + "---|" * 13]
    for item in sorted(items, key=lambda i: (i.result.device, i.result.prompt_tokens)):
        r = item.result
        rows.append(
            f"| {r.device} | {r.source} | {r.os} | {r.scheme} | {r.ctx} | {r.prompt_tokens}/{r.generated_tokens} "
            f"| {_fmt(r.prefill_tokens_per_sec)} | {_fmt(r.decode_tokens_per_sec, 2)} | {_fmt(r.ttft_ms)} "
            f"| {_fmt(r.load_ms, 0)} | {_fmt(r.peak_rss_mb, 0)} | {_fmt(r.model_size_mb)} | {item.path.name} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------- charts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on a headless CI machine
    import matplotlib.pyplot as plt

    return plt


def _bars(
    ax: Any, labels: list[str] | None, values: list[float], colors: list[Any], title: str, unit: str
) -> None:
    """Horizontal bars (long device labels stay readable); labels=None: a panel beside another."""
    positions = range(len(values))
    ax.barh(list(positions), values, color=colors)
    if labels is None:
        ax.set_yticks(list(positions), [""] * len(values))
    else:
        ax.set_yticks(list(positions), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(unit)
    for y, value in zip(positions, values, strict=True):
        ax.text(value, y, f" {value:,.1f}", va="center", fontsize=7)


def _model_colors(results: list[BenchResult]) -> tuple[list[Any], dict[str, Any]]:
    plt = _pyplot()
    palette = plt.get_cmap("tab10")
    models = sorted({r.model for r in results})
    by_model = {m: palette(i % 10) for i, m in enumerate(models)}
    return [by_model[r.model] for r in results], by_model


def _legend(fig: Any, by_model: dict[str, Any]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=m) for m, c in by_model.items()]
    fig.legend(handles=handles, loc="upper right", fontsize=8, title="model")


def tokens_chart(results: list[BenchResult], path: Path) -> None:
    plt = _pyplot()
    labels = [label(r) for r in results]
    colors, by_model = _model_colors(results)
    height = 1.5 + 0.35 * len(results)
    fig, (decode, prefill) = plt.subplots(1, 2, figsize=(13, height))
    _bars(
        decode, labels, [r.decode_tokens_per_sec for r in results], colors, "decode", "tokens/sec"
    )
    _bars(
        prefill, None, [r.prefill_tokens_per_sec for r in results], colors, "prefill", "tokens/sec"
    )
    _legend(fig, by_model)
    fig.suptitle("Tokens per second by device and model")
    _save(fig, path)


def memory_chart(results: list[BenchResult], path: Path) -> None:
    plt = _pyplot()
    labels = [label(r) for r in results]
    colors, by_model = _model_colors(results)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.35 * len(results)))
    _bars(ax, labels, [r.peak_rss_mb for r in results], colors, "peak memory", "MB")
    ax.scatter(
        [r.model_size_mb for r in results],
        range(len(results)),
        marker="|",
        s=200,
        color="black",
        label="model.pte size",
        zorder=3,
    )
    ax.legend(loc="lower right", fontsize=8)
    _legend(fig, by_model)
    fig.suptitle("Peak memory by device and model")
    _save(fig, path)


def sustained_chart(item: LoadedResult, path: Path) -> None:
    """tokens/sec over time, the background shaded by thermal state, headroom on a second axis."""
    plt = _pyplot()
    r = item.result
    assert r.sustained is not None
    samples = r.sustained.samples
    times = [s.t_s for s in samples]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _shade_thermal(ax, samples, r.sustained.interval_s)
    ax.plot(
        times,
        [s.tokens_per_sec for s in samples],
        color="tab:blue",
        marker=".",
        label="decode tokens/sec",
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("tokens/sec")
    ax.set_ylim(bottom=0)
    headroom = [(s.t_s, s.thermal_headroom) for s in samples if s.thermal_headroom is not None]
    if headroom:
        twin = ax.twinx()
        twin.plot(
            *zip(*headroom, strict=True), color="tab:red", linestyle="--", label="thermal headroom"
        )
        twin.set_ylabel("thermal headroom (1.0 = severe throttling)")
        twin.legend(loc="upper right", fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"Sustained decode: {r.model} on {r.device} ({r.os})")
    _save(fig, path)


def _shade_thermal(ax: Any, samples: list[Any], interval: float) -> None:
    plt = _pyplot()
    states = [s.thermal for s in samples]
    known = [s for s in THERMAL_ORDER if s in states] + sorted(
        {s for s in states if s and s not in THERMAL_ORDER}
    )
    if not known:
        return
    cmap = plt.get_cmap("YlOrRd")
    colors = {state: cmap(0.15 + 0.7 * i / max(len(known) - 1, 1)) for i, state in enumerate(known)}
    labelled: set[str] = set()
    for sample in samples:
        if sample.thermal is None:
            continue
        start = max(sample.t_s - interval, 0)
        label_text = None if sample.thermal in labelled else f"thermal: {sample.thermal}"
        labelled.add(sample.thermal)
        ax.axvspan(
            start,
            sample.t_s,
            color=colors[sample.thermal],
            alpha=0.35,
            linewidth=0,
            label=label_text,
        )


def _readable(directory: Path) -> None:
    """Temporaries are created private (0600/0700); a report is meant to be shared."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for child in directory.iterdir():
        child.chmod(0o666 & ~umask)


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- entry point


def report(paths: list[Path], out: Path, *, force: bool = False) -> ReportResult:
    loaded = load_all([Path(p) for p in paths])
    out = Path(out)
    fsutil.prepare_output_dir(out, force=force)
    results = [i.result for i in loaded]
    with (
        progress.stage("report", f"{len(loaded)} results → {out}") as note,
        fsutil.atomic_path(out, is_dir=True) as tmp,
    ):
        tokens_chart(results, tmp / TOKENS_CHART)
        memory_chart(results, tmp / MEMORY_CHART)
        sustained: list[str] = []
        for index, item in enumerate(
            i for i in loaded if i.result.sustained and i.result.sustained.samples
        ):
            name = f"sustained-{index + 1}-{slug(item.result.model)}-{slug(item.result.device)}.png"
            sustained_chart(item, tmp / name)
            sustained.append(name)
        charts = {"summary": [TOKENS_CHART, MEMORY_CHART], "sustained": sustained}
        fsutil.write_text(tmp / REPORT, markdown(loaded, charts) + "\n")
        _readable(tmp)
        note["note"] = f"{REPORT} + {2 + len(sustained)} charts"
    return ReportResult(
        out_dir=str(out),
        report=str(out / REPORT),
        charts=[str(out / c) for c in charts["summary"] + charts["sustained"]],
        results=len(loaded),
        models=sorted({r.model for r in results}),
    )
