"""`mobq sweep`: a release matrix on Ray, with a live table of jobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from mobq.cli import cli
from mobq.cli._common import console, json_option, print_json

STATUS_STYLE = {
    "queued": "dim",
    "running": "cyan",
    "done": "green",
    "cached": "green",
    "failed": "red",
}


def _jobs_table(rows: list[Any], started: float) -> Any:
    from rich.table import Table

    table = Table(title=f"mobq sweep — {time.perf_counter() - started:.0f}s elapsed")
    for column in ("cell", "status", "time", "program", "SQNR min", "note"):
        table.add_column(column)
    for row in rows:
        figures = row.figures or {}
        style = STATUS_STYLE.get(row.status, "")
        table.add_row(
            row.name,
            f"[{style}]{row.status}[/]",
            f"{row.seconds:.0f}s" if row.seconds else "",
            f"{figures['program_mb']:.1f} MB" if figures.get("program_mb") else "",
            f"{figures['sqnr_db_min']:.1f} dB" if figures.get("sqnr_db_min") is not None else "",
            (row.error or "")[:90],
        )
    return table


def _size(gb: float) -> str:
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb * 1024:.0f} MB"


def _preview(
    jobs: list[Any], waves: list[list[Any]], too_large: list[Any], limits: dict[str, Any]
) -> None:
    from rich.table import Table

    table = Table(title=f"dry run: {len(jobs)} jobs in {len(waves)} waves on {limits['cpus']} CPUs, "
                  f"{limits['memory_bytes'] / 1024**3:.1f} GB")  # fmt: skip
    for column in ("wave", "cell", "cpus", "export peak (est.)", "program (est.)", "steps"):
        table.add_column(column)
    labelled = [(str(n), job) for n, wave in enumerate(waves, start=1) for job in wave]
    labelled += [("too large", job) for job in too_large]
    for label, job in labelled:
        est = job.estimate or {}
        table.add_row(
            label, job.name, str(job.cpus),
            _size(est["export_peak_gb"]) if est else "unknown",
            _size(est["program_gb"]) if est else "unknown",
            ", ".join(job.steps),
        )  # fmt: skip
    console().print(table)


@cli.command()
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", default="runs", show_default=True, help="Directory or fsspec URL for the cells."
)
@click.option(
    "--address", help="Ray cluster address (auto, ray://host:10001); default: RAY_ADDRESS or local."
)
@click.option("--cpus", type=int, help="CPUs for the local Ray [all cores].")
@click.option(
    "--cpus-per-job", type=int, default=1, show_default=True, help="CPUs each job asks Ray for."
)
@click.option(
    "--retries", type=int, default=0, show_default=True, help="Retries for transient failures."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the jobs, their memory estimates and the schedule; run nothing.",
)
@click.option(
    "--sequential",
    is_flag=True,
    help="Run the jobs one after another in this process, without Ray.",
)
@json_option("Print summary.json.")
def sweep(
    plan_file: Path,
    out: str,
    address: str | None,
    cpus: int | None,
    cpus_per_job: int,
    retries: int,
    dry_run: bool,
    sequential: bool,
    as_json: bool,
) -> None:
    """Export (and bench / eval) every cell of PLAN_FILE: models x schemes x ctx.

    \b
    mobq sweep plan.yaml --out runs/
    mobq sweep plan.yaml --address auto
    mobq sweep plan.yaml --dry-run
    """
    from mobq import sweep as sweep_mod
    from mobq.errors import InputError

    if cpus_per_job < 1 or retries < 0:
        raise InputError("--cpus-per-job must be >= 1 and --retries >= 0")
    plan = sweep_mod.load_plan(plan_file)
    jobs = sweep_mod.expand(plan, out, cpus_per_job)
    if dry_run:
        limits = sweep_mod.preview_limits(address, cpus)
        waves, too_large = sweep_mod.schedule_preview(jobs, limits["memory_bytes"], limits["cpus"])
        if as_json:
            print_json(
                {
                    "jobs": [vars(j) for j in jobs],
                    "waves": [[j.name for j in w] for w in waves],
                    "too_large": [j.name for j in too_large],
                    **limits,
                }
            )
        else:
            _preview(jobs, waves, too_large, limits)
        return
    from rich.live import Live

    started = time.perf_counter()
    with Live(
        _jobs_table([], started),
        console=console(stderr=True),
        refresh_per_second=2,
        transient=as_json,
    ) as live:

        def update(rows: list[Any]) -> None:
            live.update(_jobs_table(rows, started))

        if sequential:
            summary = sweep_mod.run_sequential(jobs, out, on_update=update)
        else:
            summary = sweep_mod.run_sweep(
                jobs, out, address=address, cpus=cpus, retries=retries, on_update=update
            )
    if as_json:
        print_json(summary.to_dict())
    failed = sum(j.status == "failed" for j in summary.jobs)
    click.echo(
        f"{len(summary.jobs) - failed}/{len(summary.jobs)} cells finished in {summary.wall_seconds:.0f}s "
        f"({summary.mode}); summary: {sweep_mod.join_out(out, 'summary.json')}",
        err=as_json,
    )
    if failed:
        raise SystemExit(1)
