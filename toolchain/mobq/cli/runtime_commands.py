"""Commands that run an export on this host."""

from __future__ import annotations

from pathlib import Path

import click

from mobq.cli import cli
from mobq.cli._common import console, print_json

# ---------------------------------------------------------------- runtime


@cli.command()
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--prompt", "-p", required=True, help="The user message.")
@click.option("--max-new-tokens", type=int, default=128, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the chat template.")
@click.option("--think/--no-think", default=True, help="Qwen3 thinking mode.")
@click.option("--json", "as_json", is_flag=True)
def run(
    export_dir: Path,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    raw: bool,
    think: bool,
    as_json: bool,
) -> None:
    """Generate with ExecuTorch's stock runner (the one the apps link)."""
    from mobq.run import generate
    from mobq.runtime import write_stdout

    def stream(piece: str) -> None:
        write_stdout(piece)

    result = generate(
        export_dir,
        prompt,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        raw=raw,
        think=think,
        on_token=None if as_json else stream,
    )
    if as_json:
        print_json({"text": result.text, "tokens": result.tokens, "stats": result.stats})
        return
    write_stdout("\n")
    stats = result.stats
    if stats.get("generated_tokens"):
        click.secho(
            f"[{stats['prompt_tokens']} prompt tokens, {stats['generated_tokens']} generated, "
            f"prefill {stats['prefill_token_per_sec']:.0f} tok/s, decode {stats['decode_token_per_sec']:.1f} tok/s]",
            dim=True,
            err=True,
        )


@cli.command()
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("exports/demo-qwen3-tiny-8da4w-ctx256"),
    show_default=True,
    help="Where the demo export goes (replaced on each run).",
)
@click.option("--prompt", "-p", default=None, help="The demo prompt.")
def demo(out: Path, prompt: str | None) -> None:
    """Build a tiny bundled model offline, export, verify, run and benchmark it."""
    from mobq import demo as demo_mod
    from mobq.run import generate
    from mobq.runtime import write_stdout

    err_console = console(stderr=True)
    export_dir = demo_mod.export_demo(out)
    text = prompt or demo_mod.DEMO_PROMPT
    err_console.print(f"\n[bold]mobq run {export_dir} --prompt {text!r}[/]")
    result = generate(export_dir, text, max_new_tokens=64, on_token=write_stdout)
    write_stdout("\n")
    stats = result.stats
    err_console.print(
        f"[dim]{stats.get('prompt_tokens')} prompt tokens, {stats.get('generated_tokens')} generated; "
        f"prefill {stats.get('prefill_token_per_sec', 0):.0f} tok/s, decode "
        f"{stats.get('decode_token_per_sec', 0):.0f} tok/s (ExecuTorch TextLLMRunner, this host)[/]"
    )


@cli.command()
@click.option("--no-hub", is_flag=True, help="Skip the Hugging Face Hub reachability check.")
@click.option("--json", "as_json", is_flag=True)
def doctor(no_hub: bool, as_json: bool) -> None:
    """Check versions, ExecuTorch's ops, disk, memory and the hub; say what to fix."""
    from mobq.doctor import run_checks

    checks = run_checks(hub=not no_hub)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print_json([c.to_dict() for c in checks])
    else:
        from rich.table import Table

        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        table = Table(title="mobq doctor")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column)
        for c in checks:
            table.add_row(c.name, f"[{colours[c.status]}]{c.status}[/]", c.detail, c.fix)
        console().print(table)
    if failed:
        raise SystemExit(1)
