"""Lowering time per decoder layer: does the export stage stay linear in depth?

Builds a random-weight model of a recipe's family at each layer count (a tiny width by default;
`--hidden 2560 --intermediate 9728` is Qwen3-4B's), quantizes it 8da4w, converts it, and times
only the export stage's build + lowering (mobq.pte.export_program, in this process), phase by
phase. Prints the table and the seconds per added layer between consecutive depths, with the CPU.

    python bench/lowering_slope.py --layers 4 9 18 36
    python bench/lowering_slope.py --layers 4 9 --hidden 2560 --intermediate 9728 --json-out w.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipe", default="qwen3-4b", help="family and vocabulary from this recipe"
    )
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 9, 18, 36])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--intermediate", type=int, default=192)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument(
        "--no-extended-ops",
        dest="extended_ops",
        action="store_false",
        help="the model cards' -X program (only the linears on XNNPACK)",
    )
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, layers: int, work: Path) -> dict[str, Any]:
    from mobq import convert, quantize, tinylm, untie
    from mobq.pte import export_program
    from mobq.pte.lowering import ExportOptions
    from mobq.recipes import get_recipe
    from mobq.schemes import SCHEMES

    architecture = get_recipe(args.recipe).architecture
    spec = tinylm.TinySpec(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim,
        vocab_size=architecture["vocab_size"],
    )
    base = work / f"l{layers}"
    tinylm.build_tiny_model(architecture, base / "model", spec=spec)
    untie.untie_checkpoint(base / "model", base / "untied")
    quantize.quantize_checkpoint(base / "untied", base / "quantized", SCHEMES["8da4w"])
    convert.convert_checkpoint(base / "quantized", base / "converted")
    start = time.perf_counter()
    result = export_program(
        "llama",
        base / "converted",
        base / "model.pte",
        ExportOptions(ctx=args.ctx, extended_ops=args.extended_ops),
        {},
    )
    return {
        "layers": layers,
        "seconds": round(time.perf_counter() - start, 2),
        "phases": result.lowering["seconds"],
        "pte_mb": round(result.bytes / 1e6, 1),
        "linears": result.lowering["prelowered_linears"],
        "partitions": result.lowering["partitions"],
    }


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(REPO / "toolchain"))
    from mobq import hostinfo, runtime

    args = parse_args(argv)
    runtime.quiet_libraries()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mobq-slope-") as scratch:
        for layers in sorted(args.layers):
            rows.append(measure(args, layers, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    host = hostinfo.host()
    program = "extended ops" if args.extended_ops else "-X"
    print(
        f"\n{args.recipe} family, hidden {args.hidden}, ctx {args.ctx}, 8da4w, {program}; "
        f"cpu {host['cpu']}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'layers':>6} {'export s':>9} {'linears s':>9} {'trace s':>8} {'edge s':>7} {'write s':>8}"
    )
    for row in rows:
        p = row["phases"]
        print(
            f"{row['layers']:>6} {row['seconds']:>9.1f} {p['linears']:>9.1f} {p['export']:>8.1f} "
            f"{p['to_edge_and_lower']:>7.1f} {p['serialize']:>8.1f}"
        )
    for before, after in itertools.pairwise(rows):
        slope = (after["seconds"] - before["seconds"]) / (after["layers"] - before["layers"])
        print(f"{before['layers']:>3} -> {after['layers']:<3} {slope:6.2f} s per added layer")
    if args.json_out:
        payload = {"rows": rows, "host": host, "args": {k: str(v) for k, v in vars(args).items()}}
        args.json_out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
