"""Which of two exports decodes faster, on a host whose memory bandwidth wanders.

Runs of a few seconds each cannot tell 5 % apart on a shared host: the read bandwidth moves
between 21 and 45 GB/s from minute to minute (docs/performance.md). This loads both programs
in one process, prefills both with the same prompt, then alternates single decode steps
(A, B, B, A, ...), so each pair of steps sees the same moment of the machine.

One load is not enough either: XNNPACK repacks the weights into fresh allocations at load, and
where they land (huge pages or not) moved one program's decode by 2-6 % between loads here, in
either direction. So every round is a fresh process that loads both programs (the first loaded
alternates) and the verdict is the median over rounds of each round's median paired ratio.
It prints each round and the summary (A/B < 1: A faster), with the CPU, kernels and the read
bandwidth around the run.

    python bench/ab_decode.py exports/before exports/after --rounds 6 --steps 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="a mobq export (model.pte + manifest.json)")
    parser.add_argument("b", type=Path, help="the export to compare with it")
    parser.add_argument("--threads", "-t", type=int, default=2)
    parser.add_argument("--prompt-tokens", "-p", type=int, default=128)
    parser.add_argument("--steps", "-n", type=int, default=200, help="decode steps per program")
    parser.add_argument("--prefills", type=int, default=4, help="prefills per program")
    parser.add_argument("--rounds", type=int, default=6, help="fresh processes, loads alternating")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--one-round", choices=["ab", "ba"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for export in (args.a, args.b):
        if not (export / "model.pte").is_file():
            parser.error(f"{export} holds no model.pte: pass a mobq export directory")
    if min(args.threads, args.prompt_tokens, args.steps, args.prefills, args.rounds) < 1:
        parser.error(
            "--threads, --prompt-tokens, --steps, --prefills and --rounds must be positive"
        )
    return args


def _vocab(export: Path) -> int:
    from mobq.manifest import load_manifest

    return int(load_manifest(export).runtime.vocab_size)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


class Program:
    """One loaded .pte, decoding greedily from its own prompt."""

    def __init__(self, export: Path, threads: int) -> None:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)
        self.module = portable_lib._load_for_executorch(str(export / "model.pte"))
        self.vocab = _vocab(export)
        self.position = 0
        self.token = 0

    def prefill(self, prompt: Any) -> float:
        import torch

        started = time.perf_counter()
        logits = self.module.forward((prompt, torch.tensor([0])))[0]
        seconds = time.perf_counter() - started
        self.position = prompt.shape[1]
        self.token = int(logits.reshape(-1, self.vocab)[-1].argmax())
        return seconds * 1000

    def step(self) -> float:
        import torch

        started = time.perf_counter()
        logits = self.module.forward((torch.tensor([[self.token]]), torch.tensor([self.position])))
        seconds = time.perf_counter() - started
        self.position += 1
        self.token = int(logits[0].reshape(-1, self.vocab)[-1].argmax())
        return seconds * 1000


def alternate(first: Any, second: Any, runs: int) -> tuple[list[float], list[float]]:
    """`runs` timings of each, in pairs whose order alternates (A B, B A, ...)."""
    a_ms, b_ms = [], []
    for index in range(runs):
        if index % 2 == 0:
            a_ms.append(first())
            b_ms.append(second())
        else:
            b_ms.append(second())
            a_ms.append(first())
    return a_ms, b_ms


def summary(a_ms: list[float], b_ms: list[float]) -> dict[str, Any]:
    ratios = [a / b for a, b in zip(a_ms, b_ms, strict=True)]
    q1, median, q3 = quartiles(ratios)
    return {
        "a_median_ms": round(statistics.median(a_ms), 3),
        "b_median_ms": round(statistics.median(b_ms), 3),
        "a_over_b": {"median": round(median, 4), "q1": round(q1, 4), "q3": round(q3, 4)},
        "runs": len(ratios),
    }


def one_round(args: argparse.Namespace) -> dict[str, Any]:
    """Both programs in this process, loaded in `args.one_round` order; paired runs."""
    import torch

    from mobq.runtime import load_ops, quiet_native_logs

    load_ops()
    with quiet_native_logs():
        if args.one_round == "ab":
            a = Program(args.a, args.threads)
            b = Program(args.b, args.threads)
        else:
            b = Program(args.b, args.threads)
            a = Program(args.a, args.threads)
        prompt = torch.arange(args.prompt_tokens, dtype=torch.long).reshape(1, -1) % a.vocab
        a.prefill(prompt), b.prefill(prompt)  # untimed: first runs pay one-off costs
        prefill = summary(
            *alternate(lambda: a.prefill(prompt), lambda: b.prefill(prompt), args.prefills)
        )
        decode = summary(*alternate(a.step, b.step, args.steps))
    return {"loaded_first": args.one_round[0].upper(), "prefill": prefill, "decode": decode}


def run_round(argv: list[str], order: str) -> dict[str, Any]:
    return run_fresh(Path(__file__), [*argv, "--one-round", order])


def run_fresh(script: Path, argv: list[str]) -> dict[str, Any]:
    """`script argv --json-out F` in a fresh Python process; its JSON, or a one-line error."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "round.json"
        command = [sys.executable, str(script), *argv, "--json-out", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"error: a round failed ({done.returncode}): {tail[0]}")
        return json.loads(out.read_text(encoding="utf-8"))


def verdict(rounds: list[dict[str, Any]], phase: str) -> dict[str, float]:
    return median_range([r[phase]["a_over_b"]["median"] for r in rounds])


def median_range(values: list[float]) -> dict[str, float]:
    """The verdict over rounds: their median, and the range it came from."""
    return {"median": round(statistics.median(values), 4), "min": min(values), "max": max(values)}


def print_host(threads: int) -> tuple[dict[str, Any], str]:
    """The CPU and the kernels runtime dispatch picks, printed first: figures compare only
    within one machine and instruction set."""
    from mobq import hostinfo
    from mobq.benchmark import dispatch_isa

    host, isa = hostinfo.host(), dispatch_isa()
    print(f"{host['cpu']}, {host['cores']} cores, kernels for {isa}, {threads} threads")
    return host, isa


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.one_round:
        args.json_out.write_text(json.dumps(one_round(args)) + "\n", encoding="utf-8")
        return
    from mobq.benchmark import bandwidth_now

    host, isa = print_host(args.threads)
    print(f"A = {args.a}\nB = {args.b}")
    forwarded = [str(args.a), str(args.b), "--threads", str(args.threads)]
    forwarded += ["--prompt-tokens", str(args.prompt_tokens), "--steps", str(args.steps)]
    forwarded += ["--prefills", str(args.prefills)]
    bandwidth = [bandwidth_now(args.threads)]
    rounds = []
    for index in range(args.rounds):
        rounds.append(run_round(forwarded, "ab" if index % 2 == 0 else "ba"))
        decode, prefill = rounds[-1]["decode"], rounds[-1]["prefill"]
        print(
            f"round {index + 1} ({rounds[-1]['loaded_first']} loaded first): decode A "
            f"{decode['a_median_ms']:.2f} / B {decode['b_median_ms']:.2f} ms, A/B "
            f"{decode['a_over_b']['median']:.3f}; prefill A/B {prefill['a_over_b']['median']:.3f}"
        )
    bandwidth.append(bandwidth_now(args.threads))
    result = {phase: verdict(rounds, phase) for phase in ("decode", "prefill")}
    for phase, ratio in result.items():
        print(
            f"{phase:8s} A/B time: median {ratio['median']:.3f} over {len(rounds)} rounds "
            f"[{ratio['min']:.3f}-{ratio['max']:.3f}]"
        )
    print(f"read bandwidth before/after: {bandwidth[0]:.1f} / {bandwidth[1]:.1f} GB/s")
    if args.json_out:
        record = {
            "host": host,
            "runtime_dispatch_isa": isa,
            "a": str(args.a),
            "b": str(args.b),
            "threads": args.threads,
            "prompt_tokens": args.prompt_tokens,
            "steps": args.steps,
            "verdict": result,
            "rounds": rounds,
            "read_bandwidth_gb_s": bandwidth,
        }
        args.json_out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
