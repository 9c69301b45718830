"""Decode against the bandwidth ceiling, measured moment by moment on a host that wanders.

`mobq bench` divides a run's decode speed by the read bandwidth measured just before and after
the run. On a shared host that bandwidth moves between 18 and 55 GB/s from second to second,
so three runs of one program gave 70 %, 79 % and 84 % of "the ceiling" (2026-12-07): the
figure said more about the neighbours than about the program.

This measures three things at the same moments, in one process: a plain read (ATen's sum and
dot over 256 MiB, mobq bench's probe, the faster counts), one pass through a chain of 8da4w
linears as wide as the model and far larger than the caches (bench/gemv_bound.py: XNNPACK's
int4 GEMV streaming weights, nothing else), and a few single decode steps of the export. Each
segment is probe, chain, decode, probe; the moment's bandwidth is the mean of its two probes.
Per segment it reports what decode streamed (the weights a token reads plus the KV cache so
far, mobq.benchmark.bytes_per_token) against the plain read and against the GEMV chain: the
first is the fraction of the physical ceiling, the second splits the gap between XNNPACK's
kernel (chain / read) and the program around it (decode / chain: attention, cache updates,
delegate calls). Each round is a fresh process (where XNNPACK's repacked weights land moves
decode by 2-6 % between loads, bench/ab_decode.py); the verdict is the median over rounds of
each round's median. Prints the CPU, kernels and every round.

    python bench/ceiling_fraction.py exports/qwen3-4b-8da4w-ctx1024 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROBE_MIB = 256
CHAIN_MB = 400  # far beyond any last-level cache here (32 MB)
WARM_STEPS = 4  # untimed: the first steps after a prefill pay one-off costs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="a mobq export (model.pte + manifest.json)")
    parser.add_argument("--threads", "-t", type=int, default=2)
    parser.add_argument("--prompt-tokens", "-p", type=int, default=128)
    parser.add_argument("--segments", type=int, default=20, help="segments per round")
    parser.add_argument("--steps", "-n", type=int, default=3, help="decode steps per segment")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--chain", type=Path, help=argparse.SUPPRESS)  # built once, per round
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (args.export / "model.pte").is_file() or not (args.export / "manifest.json").is_file():
        parser.error(f"{args.export} is not a mobq export (model.pte + manifest.json)")
    if min(args.threads, args.prompt_tokens, args.segments, args.steps, args.rounds) < 1:
        parser.error(
            "--threads, --prompt-tokens, --segments, --steps and --rounds must be positive"
        )
    manifest = _manifest(args.export)
    if manifest.export.scheme != "8da4w":
        parser.error(f"{args.export} is a {manifest.export.scheme} export; this compares 8da4w")
    ctx = manifest.runtime.max_context_len
    if positions_used(args) > ctx:
        parser.error(
            f"prompt + decoded tokens ({positions_used(args)}) exceed the export's context ({ctx})"
        )
    return args


def positions_used(args: argparse.Namespace) -> int:
    return args.prompt_tokens + WARM_STEPS + args.segments * args.steps


def _manifest(export: Path) -> Any:
    from mobq.manifest import load_manifest

    return load_manifest(export)


def _sibling(name: str) -> Any:
    """A sibling script of bench/ (they are files, not a package)."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_gb_s(threads: int) -> float:
    """One plain read of the moment (a sum and a dot, the faster)."""
    from mobq.benchmark import _measure_bandwidth

    return _measure_bandwidth(threads, size_mib=PROBE_MIB, repeats=1)[0]


def chain_shape(manifest: Any) -> tuple[int, int, int, int]:
    """The GEMV chain for an export: width, group size, layers and weight bytes."""
    width, group = int(manifest.model.params["dim"]), int(manifest.export.group_size)
    per_layer = _sibling("gemv_bound").weight_bytes(width, group)
    layers = max(1, round(CHAIN_MB * 1e6 / per_layer))
    return width, group, layers, layers * per_layer


def segment(
    probes_gb_s: tuple[float, float], chain_gb_s: float, step_ms: list[float], step_bytes: list[int]
) -> dict[str, float]:
    """One moment: decode's and the chain's streaming against the mean of the two probes."""
    read = sum(probes_gb_s) / 2
    decode = sum(step_bytes) / (sum(step_ms) / 1000) / 1e9
    return {
        "read_gb_s": round(read, 2),
        "chain_gb_s": round(chain_gb_s, 2),
        "decode_gb_s": round(decode, 2),
        "decode_tok_s": round(len(step_ms) / (sum(step_ms) / 1000), 3),
        "decode_over_read": round(decode / read, 4),
        "chain_over_read": round(chain_gb_s / read, 4),
        "decode_over_chain": round(decode / chain_gb_s, 4),
    }


RATIOS = ("decode_over_read", "chain_over_read", "decode_over_chain")


def round_summary(segments: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        key: round(statistics.median(s[key] for s in segments), 4)
        for key in (*RATIOS, "decode_tok_s", "read_gb_s")
    }
    summary["read_gb_s_range"] = [
        min(s["read_gb_s"] for s in segments),
        max(s["read_gb_s"] for s in segments),
    ]
    summary["segments"] = segments
    return summary


def one_round(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from executorch.extension.pybindings import portable_lib

    from mobq.benchmark import bytes_per_token
    from mobq.runtime import load_ops, quiet_native_logs

    manifest = _manifest(args.export)
    width, _, _, chain_bytes = chain_shape(manifest)
    load_ops()
    with quiet_native_logs():
        program = _sibling("ab_decode").Program(args.export, args.threads)
        chain, row = portable_lib._load_for_executorch(str(args.chain)), torch.randn(1, width)
        prompt = torch.arange(args.prompt_tokens, dtype=torch.long).reshape(1, -1) % program.vocab
        program.prefill(prompt)
        for _ in range(WARM_STEPS):
            program.step()
            chain.forward((row,))
        segments, before = [], probe_gb_s(args.threads)
        for _ in range(args.segments):
            started = time.perf_counter()
            chain.forward((row,))
            chain_gb_s = chain_bytes / (time.perf_counter() - started) / 1e9
            positions = range(program.position, program.position + args.steps)
            step_ms = [program.step() for _ in positions]
            after = probe_gb_s(args.threads)
            step_bytes = [bytes_per_token(manifest, args.export, p) for p in positions]
            segments.append(segment((before, after), chain_gb_s, step_ms, step_bytes))
            before = after
    return round_summary(segments)


def build_chain(export: Path, scratch: Path) -> Path:
    """The GEMV chain for this export's width and group size, lowered as gemv_bound does."""
    from mobq.runtime import quiet_native_logs

    width, group, layers, _ = chain_shape(_manifest(export))
    with quiet_native_logs():
        return _sibling("gemv_bound").lowered_chain(width, group, layers, scratch)


def run_round(argv: list[str]) -> dict[str, Any]:
    return _sibling("ab_decode").run_fresh(Path(__file__), [*argv, "--one-round"])


def verdict(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    ab_decode = _sibling("ab_decode")
    return {key: ab_decode.median_range([r[key] for r in rounds]) for key in RATIOS}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.one_round:
        args.json_out.write_text(json.dumps(one_round(args)) + "\n", encoding="utf-8")
        return
    host, isa = _sibling("ab_decode").print_host(args.threads)
    print(
        f"{args.export}: {args.segments} segments per round, each a read probe, a "
        f"{CHAIN_MB} MB GEMV chain pass and {args.steps} decode steps"
    )
    forwarded = [str(args.export), "--threads", str(args.threads)]
    forwarded += ["--prompt-tokens", str(args.prompt_tokens), "--segments", str(args.segments)]
    forwarded += ["--steps", str(args.steps)]
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        forwarded += ["--chain", str(build_chain(args.export, Path(scratch)))]
        for index in range(args.rounds):
            rounds.append(run_round(forwarded))
            r = rounds[-1]
            print(
                f"round {index + 1}: decode {r['decode_tok_s']:.2f} tok/s; of the moment's read "
                f"({r['read_gb_s_range'][0]:.0f}-{r['read_gb_s_range'][1]:.0f} GB/s): decode "
                f"{r['decode_over_read']:.1%}, GEMV chain {r['chain_over_read']:.1%}; decode / "
                f"chain {r['decode_over_chain']:.1%}"
            )
    result = verdict(rounds)
    for key, label in zip(
        RATIOS,
        ("decode / plain read (the ceiling)", "GEMV chain / plain read", "decode / GEMV chain"),
        strict=True,
    ):
        v = result[key]
        print(
            f"{label:34s} {v['median']:.1%} (median of {len(rounds)} rounds, "
            f"{v['min']:.1%}-{v['max']:.1%})"
        )
    if args.json_out:
        record = {
            "host": host,
            "runtime_dispatch_isa": isa,
            "export": str(args.export),
            "threads": args.threads,
            "prompt_tokens": args.prompt_tokens,
            "segments": args.segments,
            "steps": args.steps,
            "probe": f"torch sum and dot over {PROBE_MIB} MiB fp32 (the faster), in the process",
            "chain_mb": CHAIN_MB,
            "verdict": result,
            "rounds": rounds,
        }
        args.json_out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
