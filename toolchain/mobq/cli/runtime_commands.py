"""Commands that run an export on this host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mobq.cli import cli
from mobq.cli._common import console, json_option, print_json

# ---------------------------------------------------------------- runtime

# EXPORT_DIR or a published export on the Hub (org/name), fetched and sha256-checked first.
_export_ref = click.argument("export_ref", metavar="EXPORT_DIR|ORG/NAME")
_revision = click.option(
    "--revision", help="With ORG/NAME: the Hub branch, tag or commit to use [main]."
)


def _locate(export_ref: str, revision: str | None) -> Path:
    from mobq.api import locate

    return locate(export_ref, revision=revision)


def _sampling_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--max-new-tokens", type=int, default=128, show_default=True),
            click.option(
                "--temperature", type=float, default=0.0, show_default=True, help="0 is greedy."
            ),
            click.option(
                "--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling mass."
            ),
            click.option("--seed", type=int, default=None, help="Make sampling repeatable."),
            click.option("--system", default=None, help="A system message."),
            click.option(
                "--raw", is_flag=True, help="Send the text as is, without the chat template."
            ),
            click.option(
                "--think/--no-think", default=True, help="Qwen3 thinking mode (shown apart)."
            ),
        ]
    ):
        f = option(f)
    return f


class _ReplyPrinter:
    """Streams a reply: the thinking part dimmed and labelled, then the answer."""

    def __init__(self) -> None:
        self.kind: str | None = None

    def __call__(self, kind: str, text: str) -> None:
        from mobq.runtime import write_stdout

        if kind != self.kind:
            if kind == "think":
                write_stdout(click.style("thinking: ", dim=True, italic=True))
            elif self.kind == "think":
                write_stdout("\n\n")
            self.kind = kind
        write_stdout(click.style(text, dim=True) if kind == "think" else text)


def _status_line(reply: Any) -> str:
    stop = {
        "eos": "",
        "max_new_tokens": ", stopped at --max-new-tokens",
        "context_full": ", context window full",
    }[reply.stop]
    data = reply.to_dict()
    return (
        f"[{reply.prompt_tokens} prompt tokens, {reply.tokens} generated, "
        f"prefill {data['prefill_tokens_per_sec']:.0f} tok/s, decode {data['decode_tokens_per_sec']:.1f} tok/s, "
        f"context {reply.context_used}/{reply.context_size}{stop}]"
    )


@cli.command()
@_export_ref
@click.option("--prompt", "-p", required=True, help="The user message.")
@_sampling_options
@click.option(
    "--stock-runner",
    is_flag=True,
    help="Generate with ExecuTorch's TextLLMRunner as the apps do (greedy or --temperature only).",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A picture for a multimodal export (ExecuTorch's MultimodalRunner; implies --stock-runner).",
)
@_revision
@json_option()
def run(
    export_ref: str,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    system: str | None,
    raw: bool,
    think: bool,
    stock_runner: bool,
    image: Path | None,
    revision: str | None,
    as_json: bool,
) -> None:
    """Generate from an export; stops on the model's eos ids.

    \b
    mobq run exports/qwen3-0.6b-8da4w-ctx1024 -p "Why is the sky blue?" --no-think
    mobq run me/qwen3-0.6b-8da4w -p "Hello" --revision v1   a published export (`mobq publish`)
    mobq run OUT -p "Once upon a time" --raw --temperature 0.8 --top-p 0.9 --seed 1
    mobq run exports/gemma-3-4b-8da4w-ctx1024 --image photo.jpg -p "What is in this picture?"
    """
    from mobq.run import uses_stock_runner

    export_dir = _locate(export_ref, revision)
    if uses_stock_runner(export_dir, stock_runner, image):
        _run_stock(
            export_dir, prompt, max_new_tokens, temperature, top_p, seed, raw, think, as_json, image
        )
        return
    from mobq.run import Conversation, Sampling
    from mobq.runtime import write_stdout

    conversation = Conversation(
        export_dir,
        sampling=Sampling(temperature, top_p, seed),
        think=think,
        system=system,
        raw=raw,
    )
    reply = conversation.send(
        prompt, max_new_tokens=max_new_tokens, on_text=None if as_json else _ReplyPrinter()
    )
    if as_json:
        print_json(reply.to_dict())
        return
    write_stdout("\n")
    click.secho(_status_line(reply), dim=True, err=True)


def _run_stock(
    export_dir: Path,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    raw: bool,
    think: bool,
    as_json: bool,
    image: Path | None = None,
) -> None:
    from mobq.errors import InputError
    from mobq.run import generate
    from mobq.runtime import write_stdout

    if top_p != 1.0 or seed is not None:
        # TextLLMRunner fixes top-p at 0.9 and seeds its sampler from the clock.
        raise InputError("--stock-runner cannot honour --top-p or --seed; drop them or the flag")
    result = generate(
        export_dir,
        prompt,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        raw=raw,
        think=think,
        on_token=None if as_json else write_stdout,
        image=image,
    )
    if as_json:
        print_json({"text": result.text, "tokens": result.tokens, "stats": result.stats})
        return
    write_stdout("\n")
    stats = result.stats
    if stats.get("generated_tokens"):
        click.secho(
            f"[{stats['prompt_tokens']} prompt tokens, {result.tokens} generated, "
            f"prefill {stats.get('prefill_token_per_sec', 0):.0f} tok/s, "
            f"decode {stats.get('decode_token_per_sec', 0):.1f} tok/s]",
            dim=True,
            err=True,
        )


CHAT_HELP = "/reset starts over, /exit (or end of input) leaves"


@cli.command()
@_export_ref
@_sampling_options
@_revision
def chat(
    export_ref: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    system: str | None,
    raw: bool,
    think: bool,
    revision: str | None,
) -> None:
    """Talk to an export, turn by turn, within its context window.

    \b
    mobq chat exports/qwen3-0.6b-8da4w-ctx1024 --no-think
    mobq chat me/qwen3-0.6b-8da4w                a published export
    """
    from mobq.run import ContextFull, Conversation, Sampling
    from mobq.runtime import write_stdout

    export_dir = _locate(export_ref, revision)
    conversation = Conversation(
        export_dir,
        sampling=Sampling(temperature, top_p, seed),
        think=think,
        system=system,
        raw=raw,
    )
    click.secho(
        f"mobq chat: {conversation.manifest.model.name}, context {conversation.ctx} tokens; {CHAT_HELP}",
        dim=True,
        err=True,
    )
    stdin = click.get_text_stream("stdin")
    while True:
        click.echo(click.style("you> ", bold=True), nl=False, err=True)
        line = stdin.readline()
        if not line:
            click.echo(err=True)
            return
        message = line.strip()
        if message in ("/exit", "/quit"):
            return
        if message == "/reset":
            conversation.reset()
            click.secho("(conversation cleared)", dim=True, err=True)
            continue
        if not message:
            continue
        try:
            reply = conversation.send(
                message, max_new_tokens=max_new_tokens, on_text=_ReplyPrinter()
            )
        except ContextFull as exc:
            click.secho(f"context window full: {exc}", fg="yellow", err=True)
            continue
        write_stdout("\n")
        click.secho(_status_line(reply), dim=True, err=True)
        if reply.stop == "context_full":
            click.secho(
                f"context window full ({reply.context_used}/{reply.context_size} tokens): /reset to start over",
                fg="yellow",
                err=True,
            )


@cli.command()
@_export_ref
@click.option(
    "--prompt-tokens", "-p", default="128", show_default=True, help="Prompt lengths, e.g. 128,512."
)
@click.option(
    "--gen-tokens", "-n", default="64", show_default=True, help="Generated tokens, e.g. 64,128."
)
@click.option("--threads", "-t", default=None, help="Thread counts, e.g. 1,2 [default: all cores].")
@click.option("--warmup", type=int, default=1, show_default=True)
@click.option("--reps", "-r", type=int, default=3, show_default=True)
@click.option(
    "--in-process", is_flag=True, help="Measure in this process (faster; peak RSS is shared)."
)
@json_option("Results in the shared bench-result schema.")
@click.option("--csv", "as_csv", is_flag=True)
@_revision
def bench(
    export_ref: str,
    prompt_tokens: str,
    gen_tokens: str,
    threads: str | None,
    warmup: int,
    reps: int,
    in_process: bool,
    as_json: bool,
    as_csv: bool,
    revision: str | None,
) -> None:
    """Load time, TTFT, prefill/decode tok/s and peak RSS through ExecuTorch's stock runner.

    \b
    mobq bench exports/qwen3-0.6b-8da4w-ctx1024 -p 128,512 -n 64 -t 1,2 --json
    mobq bench me/qwen3-0.6b-8da4w               a published export
    """
    from mobq import benchmark as bench_mod
    from mobq import hostinfo
    from mobq.errors import InputError
    from mobq.manifest import load_manifest

    if as_json and as_csv:
        raise InputError("choose one of --json and --csv")
    export_dir = _locate(export_ref, revision)
    manifest = load_manifest(export_dir)
    thread_counts = (
        bench_mod.parse_lengths(threads, "--threads") if threads else [hostinfo.host()["cores"]]
    )
    configs = bench_mod.plan(
        manifest,
        bench_mod.parse_lengths(prompt_tokens, "--prompt-tokens"),
        bench_mod.parse_lengths(gen_tokens, "--gen-tokens"),
        thread_counts,
        warmup=warmup,
        reps=reps,
    )
    results = bench_mod.run(export_dir, configs, fresh_process=not in_process)
    if as_json:
        print_json([r.model_dump(mode="json") for r in results])
    elif as_csv:
        click.echo(bench_mod.to_csv(results), nl=False)
    else:
        _bench_table(results)


def _bench_table(results: list[Any]) -> None:
    from rich.table import Table

    first = results[0]
    table = Table(
        title=f"mobq bench {first.model} ({first.scheme}, ctx {first.ctx}, {first.model_size_mb:.1f} MB)"
        f" on {first.device}"
        + (f", {first.notes['dispatch_isa']} kernels" if first.notes.get("dispatch_isa") else ""),
        caption="median of repetitions, \\[min-max]; ExecuTorch TextLLMRunner",
    )
    for column in (
        "pp",
        "tg",
        "threads",
        "load ms",
        "TTFT ms",
        "prefill tok/s",
        "decode tok/s",
        "peak RSS MB",
        "decode ceiling",
    ):
        table.add_column(column, justify="right")

    def cell(r: Any, metric: str, digits: int) -> str:
        s = r.spread[metric]
        return f"{s.median:.{digits}f} [{s.min:.{digits}f}-{s.max:.{digits}f}]"

    for r in results:
        ceiling = (
            f"{r.ceiling.decode_tokens_per_sec_limit:.1f} ({r.ceiling.fraction_of_limit:.0%})"
            if r.ceiling
            else "-"
        )
        table.add_row(
            str(r.prompt_tokens),
            str(r.generated_tokens),
            str(r.threads),
            f"{r.load_ms:.0f}",
            cell(r, "ttft_ms", 1),
            cell(r, "prefill_tokens_per_sec", 1),
            cell(r, "decode_tokens_per_sec", 1),
            f"{r.peak_rss_mb:.0f}",
            ceiling,
        )
    out = console()
    out.print(table)
    for r in results:
        encode = r.notes.get("image_encode_ms")
        if encode:
            out.print(
                f"image encode ({r.threads} threads): {encode['median']:.1f} ms "
                f"[{encode['min']:.1f}-{encode['max']:.1f}]"
            )
    if first.ceiling:
        c = first.ceiling
        out.print(
            f"decode ceiling: {c.memory_bandwidth_gb_s:.1f} GB/s ({c.method}) / "
            f"{c.bytes_per_token / 1e6:.1f} MB read per token (weights + KV cache) = "
            f"{c.decode_tokens_per_sec_limit:.1f} tok/s; reached {c.fraction_of_limit:.0%}"
        )
    for r in results:
        at_run = r.notes.get("ceiling_at_run")
        if at_run:
            before, after = at_run["memory_bandwidth_gb_s"]
            out.print(
                f"at the run (-p {r.prompt_tokens}, {r.threads} threads): {before:.1f} GB/s before, "
                f"{after:.1f} after = {at_run['decode_tokens_per_sec_limit']:.1f} tok/s; "
                f"reached {at_run['fraction_of_limit']:.0%}"
            )


@cli.command(name="eval")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option(
    "--text",
    "text_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Text to score [default: the corpus bundled with mobq].",
)
@click.option(
    "--max-tokens", type=int, default=512, show_default=True, help="Tokens of text scored."
)
@click.option(
    "--lm-eval",
    "lm_eval_tasks",
    default=None,
    help="lm-evaluation-harness tasks, e.g. hellaswag,gsm8k.",
)
@click.option("--lm-eval-limit", type=int, default=None, help="Examples per lm-eval task.")
@json_option()
def eval_command(
    export_dir: Path,
    text_path: Path | None,
    max_tokens: int,
    lm_eval_tasks: str | None,
    lm_eval_limit: int | None,
    as_json: bool,
) -> None:
    """Perplexity of the reference, the eager quantized model and the .pte, and their agreement.

    \b
    mobq eval exports/qwen3-0.6b-8da4w-ctx1024 --json
    mobq eval OUT --text wiki.txt --max-tokens 2048 --lm-eval hellaswag --lm-eval-limit 200
    """
    from mobq import evaluate

    tasks = [t.strip() for t in lm_eval_tasks.split(",") if t.strip()] if lm_eval_tasks else None
    result = evaluate.run(
        export_dir,
        text_path=text_path,
        max_tokens=max_tokens,
        lm_eval_tasks=tasks,
        lm_eval_limit=lm_eval_limit,
    )
    if as_json:
        print_json(result.to_dict())
        return
    from rich.table import Table

    table = Table(
        title=f"mobq eval {result.model} ({result.scheme}): {result.tokens} tokens of {Path(result.text).name},"
        f" windows of {result.window}"
    )
    for column in ("model", "perplexity", "predictions", "note"):
        table.add_column(column)
    for s in result.scores:
        table.add_row(
            s.model,
            "-" if s.perplexity is None else f"{s.perplexity:.3f}",
            str(s.predictions),
            s.skipped or s.description,
        )
    out = console()
    out.print(table)
    for pair, value in result.agreement.items():
        out.print(f"top-1 agreement {pair.replace('_vs_', ' vs ')}: {value:.1%}")
    if result.lm_eval:
        print_json(result.lm_eval["results"])


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
@json_option()
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
