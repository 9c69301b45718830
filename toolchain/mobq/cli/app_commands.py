"""`mobq bundle`, `mobq device android ...` and `mobq report`: the apps' side of mobq."""

from __future__ import annotations

from pathlib import Path

import click

from mobq.cli import cli
from mobq.cli._common import console, force_option, json_option, print_json

DEMO_EXPORT = Path("exports/demo-qwen3-tiny-8da4w-ctx256")


# ---------------------------------------------------------------- bundle


@cli.command()
@click.argument("target", type=click.Choice(["ios", "android"]))
@click.argument("export_ref", metavar="[EXPORT_DIR|ORG/NAME]", default=str(DEMO_EXPORT))
@click.option(
    "--app-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The app's folder (default: ios_app/ or android_app/ of this checkout).",
)
@click.option(
    "--phone",
    default=None,
    help="Check against one phone class only (see data/phone_classes.yaml).",
)
@force_option("Replace a model already bundled in the app.")
@click.option("--revision", help="With ORG/NAME: the Hub branch, tag or commit [main].")
@json_option()
def bundle(
    target: str,
    export_ref: str,
    app_dir: Path | None,
    phone: str | None,
    force: bool,
    revision: str | None,
    as_json: bool,
) -> None:
    """Copy an export into a sample app and check it fits the phone's memory.

    \b
    mobq bundle android                                   the demo export
    mobq bundle ios exports/qwen3-0.6b-8da4w-ctx512 --phone iphone-8gb --force
    mobq bundle android me/qwen3-0.6b-8da4w               a published export
    """
    from mobq.api import locate
    from mobq.bundle import bundle as run_bundle

    export_dir = locate(export_ref, revision=revision)
    result = run_bundle(target, export_dir, app_dir, phone=phone, force=force)  # type: ignore[arg-type]
    if as_json:
        print_json(result.to_dict())
        return
    _print_bundle(result)


def _print_bundle(result) -> None:
    from rich.table import Table

    out = console()
    files = Table(title=f"{result.model} ({result.scheme}, ctx {result.ctx}) → {result.target} app")
    for column in ("role", "copied to", "MB", "sha256"):
        files.add_column(column)
    for f in result.files:
        files.add_row(f.role, f.destination, f"{f.bytes / 1024**2:.2f}", f.sha256[:12] + "…")
    out.print(files)
    need = result.need
    fits = Table(
        title=f"memory: program {need['program_mb']} MB + KV cache {need['kv_cache_mb']} MB + runtime {need['runtime_mb']} MB = {need['total_mb']} MB"
    )
    projected = {p["phone"]: p for p in result.projections}
    columns = ["phone class", "e.g.", "app budget MB", "fits"]
    if projected:
        columns.append("decode tok/s (projected)")
        fits.caption = (
            "decode tok/s: a projection, not a measurement: memory bandwidth x efficiency / bytes "
            "read per token, empty to full context (docs/apps.md)"
        )
    for column in columns:
        fits.add_column(column)
    for fit in result.fits:
        row = [
            fit.phone,
            fit.example,
            f"{fit.budget_mb:.0f}",
            "[green]yes[/]" if fit.fits else "[red]no[/]",
        ]
        if projected:
            p = projected.get(fit.phone)
            row.append(
                f"~{p['decode_tokens_per_sec']:.0f}-{p['decode_tokens_per_sec_full_ctx']:.0f}"
                if p
                else "-"
            )
        fits.add_row(*row)
    out.print(fits)


# ---------------------------------------------------------------- device


@cli.group()
def device() -> None:
    """Drive the sample apps on a connected phone."""


@device.group()
def android() -> None:
    """The Android app through adb: push an export, run the benchmark, pull the results.

    \b
    mobq device android push exports/qwen3-0.6b-8da4w-ctx512
    mobq device android bench exports/qwen3-0.6b-8da4w-ctx512 --sustained-minutes 5 --out results/
    mobq device android pull --out results/
    """


_serial = click.option(
    "--serial", "-s", default=None, help="adb serial when several phones are connected."
)


@android.command("push")
@click.argument("export_dir", type=click.Path(path_type=Path), default=DEMO_EXPORT)
@_serial
@json_option()
def android_push(export_dir: Path, serial: str | None, as_json: bool) -> None:
    """Copy an export's files into the app's models folder on the phone."""
    from mobq.android_device import push

    result = push(export_dir, serial=serial)
    if as_json:
        print_json(result.to_dict())
        return
    for f in result.files:
        click.echo(f"{f['local']} → {result.serial}:{f['remote']}")


@android.command("bench")
@click.argument("export_dir", type=click.Path(path_type=Path), default=DEMO_EXPORT)
@_serial
@click.option("--warmup", type=int, default=1, show_default=True)
@click.option(
    "--reps", type=int, default=3, show_default=True, help="Measured repetitions per prompt."
)
@click.option(
    "--sustained-minutes",
    type=float,
    default=0.0,
    show_default=True,
    help="Then decode continuously this long, sampling tokens/sec and thermal state.",
)
@click.option(
    "--interval",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between sustained samples.",
)
@click.option("--no-wait", is_flag=True, help="Start the run and return.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds to wait for the result (default: 10 min + the sustained phase).",
)
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@json_option()
def android_bench(
    export_dir: Path,
    serial: str | None,
    warmup: int,
    reps: int,
    sustained_minutes: float,
    interval: float,
    no_wait: bool,
    timeout: float | None,
    out: Path,
    as_json: bool,
) -> None:
    """Start the app's benchmark on a pushed export and fetch its result JSON."""
    from mobq.android_device import bench

    run = bench(
        export_dir,
        warmup=warmup,
        repetitions=reps,
        sustained_s=sustained_minutes * 60,
        interval_s=interval,
        wait=not no_wait,
        timeout_s=timeout,
        out=out,
        serial=serial,
    )
    if as_json:
        print_json(run.to_dict())
    elif run.local_result:
        click.echo(f"result: {run.local_result}  (mobq report {run.local_result} --out report/)")
    else:
        click.echo(
            f"started run {run.run_id} on {run.serial}; `mobq device android pull` when it is done"
        )


@android.command("pull")
@_serial
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=Path("results"), show_default=True
)
@json_option()
def android_pull(serial: str | None, out: Path, as_json: bool) -> None:
    """Copy every result the app wrote into OUT (each validated)."""
    from mobq.android_device import pull

    paths = pull(out, serial=serial)
    if as_json:
        print_json([str(p) for p in paths])
        return
    for path in paths:
        click.echo(str(path))


# ---------------------------------------------------------------- report


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for report.md and the charts.",
)
@force_option("Replace an existing report folder.")
@json_option()
def report(results: tuple[Path, ...], out: Path, force: bool, as_json: bool) -> None:
    """Merge host and device results into report.md and PNG charts.

    \b
    mobq report bench.json results/*.json --out report/
    """
    from mobq.report import report as run_report

    result = run_report(list(results), out, force=force)
    if as_json:
        print_json(result.to_dict())
        return
    console().print(
        f"[green]✓[/] {result.results} results ({', '.join(result.models)}) → {result.report}"
    )
    for chart in result.charts:
        console().print(f"  {chart}")
