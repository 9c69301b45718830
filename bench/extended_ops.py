"""XNNPACK's extended ops on or off: export time and runtime speed, side by side in one run.

Exports one recipe with random weights twice (`--no-extended-ops`: the dynamic-quant partitioner
alone, as the model cards' `-X`; `--extended-ops`: norms, rope and elementwise ops on XNNPACK
too), then benchmarks both through ExecuTorch's stock runner (`mobq bench`, fresh process per
configuration) at the same threads, in `--rounds` alternating rounds. Prints export seconds,
prefill and decode tok/s, peak RSS and the decode bandwidth ceiling `mobq bench` reports, with
the CPU.

    python bench/extended_ops.py qwen3-0.6b --ctx 512 --json-out ext.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a recipe name (random weights)")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--prompt-tokens", default="128")
    parser.add_argument("--gen-tokens", default="64")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--reps", default="3")
    parser.add_argument(
        "--rounds", type=int, default=3, help="benchmark rounds, alternating the two programs"
    )
    parser.add_argument("--cache", type=Path, help="stage cache (shared by both exports)")
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def _mobq(*argv: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mobq", *argv], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mobq {' '.join(argv)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def export(args: argparse.Namespace, extended: bool, work: Path, env: dict[str, str]) -> dict:
    out = work / ("extended" if extended else "dq-only")
    flag = "--extended-ops" if extended else "--no-extended-ops"
    argv = ["export", args.model, "--random-weights", "--ctx", str(args.ctx), flag]
    manifest = json.loads(_mobq(*argv, "--out", str(out), "--json", env=env))
    stage = next(s for s in manifest["stages"] if s["name"] == "export")
    return {
        "extended_ops": extended,
        "dir": out,
        "export_seconds": stage["seconds"],
        "cached": stage["cached"],
        "lowering": stage["detail"].get("lowering"),
        "pte_mb": round((out / "model.pte").stat().st_size / 1e6, 1),
        "bench": [],
    }


def bench(args: argparse.Namespace, row: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    argv = ["bench", str(row["dir"]), "-p", args.prompt_tokens, "-n", args.gen_tokens]
    argv += ["-t", args.threads, "-r", args.reps, "--json"]
    return json.loads(_mobq(*argv, env=env))


def main(argv: list[str]) -> None:
    import os

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mobq-ext-") as scratch:
        env = {**os.environ, "MOBQ_CACHE": str(args.cache or Path(scratch) / "cache")}
        rows = [export(args, extended, Path(scratch), env) for extended in (False, True)]
        # Interleaved rounds: a neighbour's burst on a shared host hits both programs alike.
        for _ in range(args.rounds):
            for row in rows:
                row["bench"].append(bench(args, row, env))
    for row in rows:
        row["dir"] = str(row["dir"])
        name = "extended ops" if row["extended_ops"] else "dq-only (-X)"
        took = "cached" if row["cached"] else f"{row['export_seconds']:.0f} s"
        print(f"{name}: export {took}, .pte {row['pte_mb']} MB")
        for number, results in enumerate(row["bench"], 1):
            for result in results:
                figures = {k: result.get(k) for k in _FIELDS}
                figures["decode_limit"] = result["ceiling"]["decode_tokens_per_sec_limit"]
                print(f"    round {number}:", json.dumps(figures))
        for field in ("prefill_tokens_per_sec", "decode_tokens_per_sec"):
            medians = [results[0][field] for results in row["bench"]]
            print(f"    {field}: median of rounds {statistics.median(medians):.2f}")
    print(f"cpu: {rows[0]['bench'][0][0]['device']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


_FIELDS = (
    "threads",
    "prompt_tokens",
    "prefill_tokens_per_sec",
    "decode_tokens_per_sec",
    "peak_rss_mb",
)


if __name__ == "__main__":
    main(sys.argv[1:])
