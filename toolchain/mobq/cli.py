"""The `mobq` command line: a thin layer over the stage modules.

Commands parse options and print; the work lives in the stage modules, which never import
click. Errors from those modules become one clear line and a non-zero exit (`--debug` shows
the traceback).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from mobq import __version__

EXIT_INTERRUPTED = 130


def _quiet_libraries() -> None:
    """torchao, ExecuTorch and transformers are chatty at import; users want mobq's lines."""
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    for name in (
        "torchao",
        "executorch",
        "transformers",
        "huggingface_hub",
        "torch",
        "torch.utils._pytree",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # mobq shows its own progress; the hub's and transformers' tqdm bars would interleave with it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class MobqGroup(click.Group):
    """Turns domain errors into one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from mobq.errors import MobqError

        debug = bool(ctx.params.get("debug")) or bool(os.environ.get("MOBQ_DEBUG"))
        try:
            return super().invoke(ctx)
        except MobqError as exc:
            if debug:
                raise
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("Interrupted: nothing half-written was left behind.", fg="yellow", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            if debug:
                raise
            message = " ".join(str(exc).split())[:300]
            click.secho(
                f"Internal error: {type(exc).__name__}: {message} (rerun with --debug for the traceback)",
                fg="red",
                err=True,
            )
            sys.exit(1)


@click.group(cls=MobqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mobq")
@click.option("--debug", is_flag=True, help="Show tracebacks and library logs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def cli(debug: bool, quiet: bool) -> None:
    """mobq: a Hugging Face LLM to a verified ExecuTorch .pte for phones.

    \b
    mobq models                              the recipes and their architectures
    mobq export qwen3-4b --ctx 1024          download, quantize, export, verify
    mobq export ./my-finetune --scheme fp32  any local checkpoint of a supported family
    mobq run exports/qwen3-4b-8da4w-ctx1024 --prompt "Hello"
    """
    if debug:
        os.environ["MOBQ_DEBUG"] = "1"
    else:
        _quiet_libraries()
    if not quiet:
        from mobq import progress

        progress.set_reporter(progress.RichReporter())


def _console(stderr: bool = False) -> Any:
    """Rich console; wide enough for tables when output is piped rather than a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, highlight=False)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# ---------------------------------------------------------------- recipes


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool) -> None:
    """List the recipes in export_configs/: hub id, defaults and architecture."""
    from mobq.recipes import all_recipes

    rows = []
    for recipe in all_recipes().values():
        arch = recipe.architecture
        rows.append(
            {
                "name": recipe.name,
                "hub_id": recipe.hub_id,
                "family": recipe.family,
                "scheme": recipe.defaults.scheme,
                "ctx": recipe.defaults.ctx,
                "layers": arch.get("num_hidden_layers"),
                "hidden": arch.get("hidden_size"),
                "heads": f"{arch.get('num_attention_heads')}/{arch.get('num_key_value_heads')}",
                "vocab": arch.get("vocab_size"),
                "tied": arch.get("tie_word_embeddings", False),
                "parameters_b": round(_recipe_parameters(arch) / 1e9, 2),
            }
        )
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title="mobq recipes (export_configs/)")
    for column in (
        "name",
        "hub_id",
        "family",
        "scheme",
        "ctx",
        "layers",
        "hidden",
        "heads",
        "vocab",
        "tied",
        "params",
    ):
        table.add_column(
            column,
            justify="right" if column in ("ctx", "layers", "hidden", "vocab", "params") else "left",
        )
    for row in rows:
        table.add_row(
            row["name"],
            row["hub_id"],
            row["family"],
            row["scheme"],
            str(row["ctx"]),
            str(row["layers"]),
            str(row["hidden"]),
            row["heads"],
            str(row["vocab"]),
            "yes" if row["tied"] else "no",
            f"{row['parameters_b']:.2f}B",
        )
    _console().print(table)


def _recipe_parameters(arch: dict[str, Any]) -> int:
    hidden, layers = arch.get("hidden_size", 0), arch.get("num_hidden_layers", 0)
    heads = arch.get("num_attention_heads", 1)
    kv = arch.get("num_key_value_heads", heads)
    head_dim = arch.get("head_dim") or hidden // max(heads, 1)
    attention = hidden * head_dim * (2 * heads + 2 * kv)
    mlp = 3 * hidden * arch.get("intermediate_size", 0)
    embeddings = arch.get("vocab_size", 0) * hidden * (1 if arch.get("tie_word_embeddings") else 2)
    return layers * (attention + mlp) + embeddings


# ---------------------------------------------------------------- export pipeline

_scheme_help = "Quantization scheme: 8da4w (default), 8da8w or fp32."


@cli.command()
@click.argument("model")
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="Output directory [exports/NAME-SCHEME-ctxN].",
)
@click.option("--scheme", help=_scheme_help)
@click.option(
    "--ctx", type=int, help="Context length (max sequence and KV-cache length) [recipe, else 1024]."
)
@click.option("--max-seq-len", type=int, help="Longest prefill chunk [ctx].")
@click.option("--group-size", type=int, help="Int4 weight group size [32].")
@click.option("--hqq/--no-hqq", default=None, help="HQQ scale-only qparams for the linears.")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="PATTERN=SCHEME",
    help="Module-name regex -> module scheme (8da4w, 8da8w, int8-weight, none); repeatable.",
)
@click.option(
    "--random-weights",
    is_flag=True,
    help="Build the recipe's architecture with random weights (offline).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random-weights.")
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Directory with tokenizer.json to use instead of the model's.",
)
@click.option("--revision", help="Hub revision (branch, tag or commit).")
@click.option("--min-sqnr", "min_sqnr_db", type=float, help="Verification gate in dB [per scheme].")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--no-cache", is_flag=True, help="Run every stage even if a cached result exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def export(model: str, as_json: bool, no_cache: bool, **options: Any) -> None:
    """Export MODEL (recipe, hub id or local directory) to a verified .pte.

    \b
    mobq export qwen3-4b --ctx 1024
    mobq export Qwen/Qwen3-8B --ctx 2048 --hqq
    mobq export ./my-finetune --ctx 512 --out dist/
    mobq export qwen3-0.6b --random-weights
    """
    from mobq.pipeline import ExportRequest, export_model

    request = ExportRequest(model=model, use_cache=not no_cache, **options)
    request.overrides = list(options["overrides"])
    out, manifest = export_model(request)
    if as_json:
        click.echo(manifest.model_dump_json(indent=2))
        return
    _print_export_summary(out, manifest)


def _print_export_summary(out: Path, manifest: Any) -> None:
    from rich.table import Table

    console = _console()
    verify = manifest.verification
    table = Table(title=f"{manifest.model.name} → {out}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    program = manifest.file("program")
    table.add_row("program", f"{program.path} ({program.bytes / 1e6:.1f} MB)")
    table.add_row("scheme / ctx", f"{manifest.export.scheme} / {manifest.export.ctx}")
    table.add_row("eos ids", ", ".join(map(str, manifest.runtime.eos_ids)))
    table.add_row(
        "bos id", "none" if manifest.runtime.bos_id is None else str(manifest.runtime.bos_id)
    )
    table.add_row(
        "verified",
        f"SQNR {verify['sqnr_db_min']:.1f} dB min / {verify['sqnr_db_mean']:.1f} mean vs {verify['reference']}, "
        f"top-1 {verify['top1_agreement']:.0%}",
    )
    table.add_row(
        "stages",
        ", ".join(
            f"{s.name} {'cached' if s.cached else f'{s.seconds:.0f}s'}" for s in manifest.stages
        ),
    )
    console.print(table)


@cli.command()
@click.argument("model")
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="Output directory."
)
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
def untie(model: str, out: Path, force: bool) -> None:
    """Give lm_head its own copy of a tied embedding (safetensors, config updated)."""
    from mobq import fsutil, source
    from mobq import untie as untie_stage

    fsutil.prepare_output_dir(out, force=force)
    result = untie_stage.run(source.resolve(model).path, out)
    if not result.was_tied:
        click.echo(f"{model} is not tied: nothing written")
        return
    click.echo(f"untied checkpoint written to {out}")


@cli.command()
@click.argument("model")
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="Output directory."
)
@click.option("--scheme", default="8da4w", show_default=True, help=_scheme_help)
@click.option("--group-size", type=int, default=32, show_default=True)
@click.option("--hqq", is_flag=True, help="HQQ scale-only qparams.")
@click.option("--override", "overrides", multiple=True, metavar="PATTERN=SCHEME")
@click.option("--force", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def quantize(
    model: str,
    out: Path,
    scheme: str,
    group_size: int,
    hqq: bool,
    overrides: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Quantize with torchao as the model cards do; the result loads back in transformers."""
    from mobq import fsutil, source
    from mobq import quantize as quantize_stage
    from mobq.schemes import QuantOptions

    fsutil.prepare_output_dir(out, force=force)
    parsed = [quantize_stage.Override.parse(text) for text in overrides]
    result = quantize_stage.run(
        source.resolve(model).path, out, scheme, QuantOptions(group_size, hqq), parsed
    )
    if as_json:
        _print_json(result.to_dict())
        return
    click.echo(
        f"{scheme}: {result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB in {out}"
    )
    for key, count in result.plan_summary.items():
        click.echo(f"  {key}: {count} modules")


@cli.command()
@click.argument("model")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True)
@click.option("--force", is_flag=True)
def convert(model: str, out: Path, force: bool) -> None:
    """Rename keys to ExecuTorch's llama layout and derive params.json from config.json."""
    from mobq import convert as convert_stage
    from mobq import fsutil, source

    fsutil.prepare_output_dir(out, force=force)
    result = convert_stage.run(source.resolve(model).path, out)
    click.echo(f"{result.tensors} tensors ({result.family}) and params.json written to {out}")


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
        _print_json({"text": result.text, "tokens": result.tokens, "stats": result.stats})
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
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("exports/demo-qwen3-tiny-8da4w-ctx256"),
              show_default=True, help="Where the demo export goes (replaced on each run).")
@click.option("--prompt", "-p", default=None, help="The demo prompt.")
def demo(out: Path, prompt: str | None) -> None:
    """Build a tiny bundled model offline, export, verify, run and benchmark it."""
    from mobq import demo as demo_mod
    from mobq.run import generate
    from mobq.runtime import write_stdout

    console = _console(stderr=True)
    export_dir = demo_mod.export_demo(out)
    text = prompt or demo_mod.DEMO_PROMPT
    console.print(f"\n[bold]mobq run {export_dir} --prompt {text!r}[/]")
    result = generate(export_dir, text, max_new_tokens=64, on_token=write_stdout)
    write_stdout("\n")
    stats = result.stats
    console.print(
        f"[dim]{stats.get('prompt_tokens')} prompt tokens, {stats.get('generated_tokens')} generated; "
        f"prefill {stats.get('prefill_token_per_sec', 0):.0f} tok/s, decode "
        f"{stats.get('decode_token_per_sec', 0):.0f} tok/s (ExecuTorch TextLLMRunner, this host)[/]"
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
