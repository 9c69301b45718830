"""Commands of the export pipeline: models, export and its stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mobq.cli import cli
from mobq.cli._common import console, force_option, json_option, out_dir_option, print_json

# ---------------------------------------------------------------- recipes


@cli.command()
@click.option(
    "--phone",
    metavar="CLASS",
    help="Add the memory fit and projected decode tok/s on a phone class (data/phone_classes.yaml).",
)
@json_option("Machine-readable output.")
def models(phone: str | None, as_json: bool) -> None:
    """List the recipes in export_configs/: hub id, defaults and architecture.

    \b
    mobq models
    mobq models --phone iphone-8gb     memory fit and projected decode speed at each recipe's ctx
    """
    from mobq.families import FAMILIES
    from mobq.recipes import all_recipes
    from mobq.resources import parameter_count

    phone_class = None
    if phone is not None:
        from mobq import projection

        phone_class = projection.find_phone(phone)
    rows = []
    for recipe in all_recipes().values():
        # Multimodal checkpoints (Gemma-3) keep the decoder's fields under text_config.
        arch = {**recipe.architecture, **(recipe.architecture.get("text_config") or {})}
        family = FAMILIES.get(recipe.family)
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
                "parameters_b": round(parameter_count(recipe.architecture) / 1e9, 2),
                "exportable": family is not None and family.blocked is None,
            }
        )
        if phone_class is not None:
            rows[-1]["projection"] = _recipe_projection(recipe, phone_class)
    if as_json:
        print_json(rows)
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
        "export",
        *((f"fits {phone}", "decode tok/s") if phone_class else ()),
    ):
        table.add_column(
            column,
            justify="left"
            if column in ("name", "hub_id", "family", "scheme", "heads", "tied", "export")
            else "right",
        )
    if phone_class is not None:
        table.caption = (
            f"fits: estimated program + KV cache at ctx + runtime vs the app budget; decode tok/s: "
            f"projected (memory bandwidth x efficiency / bytes per token), empty to full context, "
            f"{phone_class.example}; a projection, not a measurement (docs/apps.md)"
        )
    for row in rows:
        extra = _projection_cells(row.get("projection")) if phone_class is not None else ()
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
            "yes" if row["exportable"] else "[yellow]not yet[/]",
            *extra,
        )
    console().print(table)


def _recipe_projection(recipe: Any, phone: Any) -> dict[str, Any] | None:
    from mobq import projection

    defaults = recipe.defaults
    if defaults.scheme not in projection.SCHEME_BYTES:
        return None
    shape = projection.ModelShape.from_architecture(
        recipe.name, recipe.architecture, defaults.scheme, defaults.group_size, defaults.ctx
    )
    return projection.project(shape, phone).to_dict()


def _projection_cells(p: dict[str, Any] | None) -> tuple[str, str]:
    if p is None:
        return "-", "-"
    fits = f"{'[green]yes[/]' if p['fits'] else '[red]no[/]'} {p['need_mb']:.0f}/{p['budget_mb']:.0f} MB"
    speed = f"~{p['decode_tokens_per_sec']:.0f}-{p['decode_tokens_per_sec_full_ctx']:.0f} projected"
    return fits, speed


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
@click.option(
    "--extended-ops/--no-extended-ops",
    default=None,
    help="XNNPACK for the non-linear ops too (norms, rope, elementwise) [on]. Off gives the "
    "model cards' -X program: faster to export, as fast to decode, slower to prefill.",
)
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
    "--text-only",
    is_flag=True,
    help="For a multimodal checkpoint (Gemma-3 4B): export the text decoder alone.",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Directory with tokenizer.json to use instead of the model's.",
)
@click.option("--revision", help="Hub revision (branch, tag or commit).")
@click.option(
    "--min-sqnr",
    "min_sqnr_db",
    type=float,
    help="Verification gate in dB, a hard floor [per scheme, with the like-with-like check].",
)
@force_option()
@click.option("--no-cache", is_flag=True, help="Run every stage even if a cached result exists.")
@json_option("Print the manifest as JSON.")
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

    out_console = console()
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
    first = verify.get("first_layer")
    if first:
        table.add_row(
            "first layer",
            f"SQNR {first['sqnr_db_min']:.1f} dB min (gate {first['threshold_db']:g}), "
            f"top-1 {first['top1']:.0%}, {first['seconds']:.0f} s before the full lowering",
        )
    table.add_row(
        "stages",
        ", ".join(
            f"{s.name} {'cached' if s.cached else f'{s.seconds:.0f}s'}" for s in manifest.stages
        ),
    )
    out_console.print(table)


@cli.command()
@click.argument("model")
@out_dir_option()
@force_option()
def untie(model: str, out: Path, force: bool) -> None:
    """Give lm_head its own copy of a tied embedding (safetensors, config updated)."""
    from mobq import fsutil, source
    from mobq.untie import untie_checkpoint

    fsutil.prepare_output_dir(out, force=force)
    result = untie_checkpoint(source.resolve(model).path, out)
    if not result.was_tied:
        click.echo(f"{model} is not tied: nothing written")
        return
    click.echo(f"untied checkpoint written to {out}")


@cli.command()
@click.argument("model")
@out_dir_option()
@click.option(
    "--scheme",
    default="8da4w",
    show_default=True,
    help=_scheme_help[:-1] + ", or int4-hqq (GPU servers: transformers, vLLM; not a .pte).",
)
@click.option("--group-size", type=int, help="Int4 weight group size [32; int4-hqq: 128].")
@click.option("--hqq", is_flag=True, help="HQQ scale-only qparams (int4-hqq always uses HQQ).")
@click.option(
    "--target",
    type=click.Choice(["h100", "a100", "cpu"]),
    help="int4-hqq: the GPU the checkpoint serves on, which picks torchao's int4 packing "
    "[this host's GPU, else cpu].",
)
@click.option("--override", "overrides", multiple=True, metavar="PATTERN=SCHEME")
@force_option(help=None)
@json_option()
def quantize(
    model: str,
    out: Path,
    scheme: str,
    group_size: int | None,
    hqq: bool,
    target: str | None,
    overrides: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Quantize with torchao as the model cards do; the result loads back in transformers.

    \b
    mobq quantize ./qwen3-untied --out q8da4w
    mobq quantize Qwen/Qwen3-8B --scheme int4-hqq --out Qwen3-8B-INT4   (on the serving GPU)
    """
    from mobq import fsutil, source
    from mobq.quantize import Override, quantize_checkpoint
    from mobq.schemes import QuantOptions, check_scheme_name

    chosen = check_scheme_name(scheme, target=None)
    options = QuantOptions(group_size or chosen.default_group_size, hqq, target)
    fsutil.prepare_output_dir(out, force=force)
    parsed = [Override.parse(text) for text in overrides]
    resolved = source.resolve(model)
    result = quantize_checkpoint(
        resolved.path, out, chosen, options, parsed, source_id=resolved.hub_id or model
    )
    if as_json:
        print_json(result.to_dict())
        return
    where = f" for {result.server_target}" if result.server_target else ""
    click.echo(
        f"{scheme}{where}: {result.bytes_in / 1e6:.1f} MB -> {result.bytes_out / 1e6:.1f} MB in {out}"
    )
    for key, count in result.plan_summary.items():
        click.echo(f"  {key}: {count} modules")


@cli.command()
@click.argument("model")
@out_dir_option(help=None)
@force_option(help=None)
def convert(model: str, out: Path, force: bool) -> None:
    """Rename keys to ExecuTorch's llama layout and derive params.json from config.json."""
    from mobq import fsutil, source
    from mobq.convert import convert_checkpoint

    fsutil.prepare_output_dir(out, force=force)
    result = convert_checkpoint(source.resolve(model).path, out)
    click.echo(f"{result.tensors} tensors ({result.family}) and params.json written to {out}")


# ---------------------------------------------------------------- stage cache


@cli.group()
def cache() -> None:
    """See and prune the stage cache (MOBQ_CACHE, default ~/.cache/mobq).

    \b
    mobq cache ls
    mobq cache prune --older-than 30       entries finished more than 30 days ago
    mobq cache prune --stage export --dry-run
    mobq cache prune --all
    """


@cache.command("ls")
@json_option()
def cache_ls(as_json: bool) -> None:
    """Each cached entry: what it is, its size and age, largest first."""
    import time

    from mobq import cache as cache_mod

    found = cache_mod.entries()
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    from rich.table import Table

    total = sum(e.bytes for e in found)
    table = Table(title=f"{cache_mod.cache_root()}: {len(found)} entries, {total / 1e9:.2f} GB")
    for column in ("kind", "MB", "age", "what", "path"):
        table.add_column(column, justify="right" if column in ("MB", "age") else "left")
    now = time.time()
    for e in found:
        table.add_row(
            e.kind if e.complete else f"[yellow]{e.kind}[/]",
            f"{e.bytes / 1e6:.1f}",
            _age(now - e.modified),
            e.detail,
            e.path.name,
        )
    console().print(table)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@cache.command("prune")
@click.option("--older-than", "older_than", type=float, metavar="DAYS", help="Finished longer ago.")
@click.option("--stage", "kind", metavar="NAME", help="One kind: untie, quantize, export, ...")
@click.option("--all", "everything", is_flag=True, help="Everything in the cache.")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@json_option()
def cache_prune(
    older_than: float | None, kind: str | None, everything: bool, dry_run: bool, as_json: bool
) -> None:
    """Remove cached entries (and always the leftovers of interrupted runs); a later export
    rebuilds what it needs."""
    from mobq import cache as cache_mod

    removed = cache_mod.prune(
        older_than_days=older_than, kind=kind, everything=everything, dry_run=dry_run
    )
    if as_json:
        print_json({"dry_run": dry_run, "removed": [e.to_dict() for e in removed]})
        return
    verb = "would remove" if dry_run else "removed"
    size = sum(e.bytes for e in removed)
    click.echo(f"{verb} {len(removed)} entries, {size / 1e9:.2f} GB")
