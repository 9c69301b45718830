"""Commands of the server (GPU) target: bench-gpu (`mobq publish` uploads its checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mobq.cli import cli
from mobq.cli._common import console, json_option, print_json


@cli.command("bench-gpu")
@click.argument("model")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="The bf16 checkpoint to compare with.",
)
@click.option(
    "--random-weights",
    is_flag=True,
    help="MODEL is a recipe: build it in bf16 on the GPU, quantize it int4-hqq, bench both.",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Tokenizer for --random-weights [mobq's synthetic ChatML one].",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("exports/bench-gpu"),
    show_default=True,
    help="Where --random-weights puts its two checkpoints.",
)
@click.option("--prompt-tokens", type=int, default=256, show_default=True)
@click.option("--new-tokens", type=int, default=256, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True, help="Timed runs (median).")
@click.option("--warmup", type=int, default=2, show_default=True, help="Untimed runs first.")
@click.option(
    "--compile/--no-compile",
    default=True,
    show_default=True,
    help="Static cache + torch.compile decoding, or eager with a dynamic cache.",
)
@click.option(
    "--decoder",
    type=click.Choice(["generate", "loop"]),
    default="generate",
    show_default=True,
    help="transformers' generate, or mobq's greedy loop: one static cache and one compiled decode step.",
)
@click.option(
    "--plain-int4/--subclass-int4",
    default=True,
    show_default=True,
    help="With --decoder loop: call the int4 matmul on plain tensors, not through the tensor subclass.",
)
@click.option(
    "--dense-prefill/--tinygemm-prefill",
    default=True,
    show_default=True,
    help="With plain int4: prefill dequantizes each weight to bf16 for the dense matmul.",
)
@click.option(
    "--int4-kernel",
    type=click.Choice(["tinygemm", "gemlite"]),
    default="tinygemm",
    show_default=True,
    help="With plain int4: torchao's tinygemm, or GemLite's Triton kernels (needs gemlite).",
)
@click.option("--save", is_flag=True, help="Keep the figures in MODEL and put them in its card.")
@json_option("Machine-readable output.")
def bench_gpu(
    model: str,
    baseline: Path | None,
    random_weights: bool,
    tokenizer: Path | None,
    workdir: Path,
    save: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Peak GPU memory and batch-1 latency of MODEL, beside its bf16 BASELINE.

    \b
    mobq bench-gpu exports/qwen3-8b-int4 --baseline ~/models/Qwen3-8B --save
    mobq bench-gpu qwen3-8b --random-weights --json
    """
    from mobq.server import gpu_bench

    options = gpu_bench.BenchSettings(**settings)
    gpu_bench.require_cuda()
    model_dir = Path(model)
    if random_weights:
        model_dir, baseline = _random_pair(model, workdir, tokenizer)
    result = gpu_bench.run(model_dir, baseline, options, save=save)
    if as_json:
        print_json(result)
        return
    _print_bench(result)


def _random_pair(recipe: str, workdir: Path, tokenizer: Path | None) -> tuple[Path, Path]:
    """bf16 random checkpoint and its int4-hqq quantization, reused when already built."""
    from mobq.quantize import quantize_checkpoint
    from mobq.schemes import SCHEMES
    from mobq.server import gpu_bench
    from mobq.untie import untie_checkpoint

    bf16 = workdir / f"{recipe}-bf16"
    int4 = workdir / f"{recipe}-int4-hqq"
    if not (bf16 / "config.json").is_file():
        gpu_bench.random_checkpoint(recipe, bf16, tokenizer)
    if not (int4 / "config.json").is_file():
        # Tied recipes (Qwen3-0.6B, -4B) get their own lm_head first, as export does.
        source = untie_checkpoint(bf16, workdir / f"{recipe}-bf16-untied").path
        quantize_checkpoint(
            source, int4, SCHEMES["int4-hqq"], source_id=f"{recipe} (random weights)"
        )
    return int4, bf16


def _print_bench(result: dict[str, Any]) -> None:
    from rich.table import Table

    quantized, baseline = result["quantized"], result["baseline"]
    table = Table(title=f"bench-gpu on {result['gpu']}")
    table.add_column("")
    if baseline:
        table.add_column("bf16", justify="right")
    table.add_column(Path(quantized["model"]).name, justify="right")
    rows = (
        ("peak reserved (GB)", "peak_reserved_gb", ".2f"),
        ("peak allocated (GB)", "peak_allocated_gb", ".2f"),
        ("weights (GB)", "weights_gb", ".2f"),
        ("latency (s)", "latency_s", ".2f"),
        ("decode tokens/s", "tokens_per_s", ".1f"),
    )
    for label, key, fmt in rows:
        cells = [format(m[key], fmt) for m in (baseline, quantized) if m]
        table.add_row(label, *cells)
    out = console()
    out.print(table)
    if baseline:
        out.print(
            f"{result['memory_reduction']:.0%} less peak memory, {result['speedup']:.2f}x faster"
        )
