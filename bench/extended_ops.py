"""XNNPACK's extended ops on or off: export time and runtime speed, side by side in one run.

Exports one recipe with random weights twice (`--no-extended-ops`: the dynamic-quant partitioner
alone, as the model cards' `-X`; `--extended-ops`: norms, rope and elementwise ops on XNNPACK
too), then benchmarks both through ExecuTorch's stock runner (`mobq bench`, fresh process per
configuration) at the same threads. Prints export seconds, prefill and decode tok/s, peak RSS and
the decode bandwidth ceiling `mobq bench` reports, with the CPU.

    python bench/extended_ops.py qwen3-0.6b --ctx 512 --json-out ext.json
"""

from __future__ import annotations

import argparse
import json
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


def measure(
    args: argparse.Namespace, extended: bool, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    out = work / ("extended" if extended else "dq-only")
    flag = "--extended-ops" if extended else "--no-extended-ops"
    manifest = json.loads(
        _mobq(
            "export",
            args.model,
            "--random-weights",
            "--ctx",
            str(args.ctx),
            flag,
            "--out",
            str(out),
            "--json",
            env=env,
        )
    )
    export = next(s for s in manifest["stages"] if s["name"] == "export")
    results = json.loads(
        _mobq(
            "bench",
            str(out),
            "-p",
            args.prompt_tokens,
            "-n",
            args.gen_tokens,
            "-t",
            args.threads,
            "-r",
            args.reps,
            "--json",
            env=env,
        )
    )
    return {
        "extended_ops": extended,
        "export_seconds": export["seconds"],
        "lowering": export["detail"].get("lowering"),
        "pte_mb": round((out / "model.pte").stat().st_size / 1e6, 1),
        "bench": results,
    }


def main(argv: list[str]) -> None:
    import os

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mobq-ext-") as scratch:
        env = {**os.environ, "MOBQ_CACHE": str(args.cache or Path(scratch) / "cache")}
        rows = [measure(args, extended, Path(scratch), env) for extended in (False, True)]
    for row in rows:
        name = "extended ops" if row["extended_ops"] else "dq-only (-X)"
        print(f"{name}: export {row['export_seconds']:.0f} s, .pte {row['pte_mb']} MB")
        for result in row["bench"]:
            figures = {k: result.get(k) for k in _FIELDS}
            figures["decode_limit"] = result["ceiling"]["decode_tokens_per_sec_limit"]
            print("   ", json.dumps(figures))
    print(f"cpu: {rows[0]['bench'][0]['device']}")
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
