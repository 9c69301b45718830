"""Peer comparison: mobq's 8da4w .pte against llama.cpp Q4_0 and Q4_K_M on this CPU.

Both sides start from the SAME checkpoint (the one the mobq export's manifest names as its
source, e.g. the random-weight Qwen3-0.6B of `mobq export qwen3-0.6b --random-weights`):
llama.cpp's own converter turns it into an f16 GGUF, llama-quantize makes Q4_0 and Q4_K_M,
llama-bench times them. mobq's side is `mobq bench` (ExecuTorch's stock TextLLMRunner).

Same threads, prompt and generation lengths on both sides. Prefill is timed from an empty
cache; decode after the prompt (llama-bench `-d P`, mobq decodes right after its P-token
prompt). Peak RSS is each measuring process's own (os.wait4 for llama-bench; a fresh worker
for mobq). See bench/README.md for building llama.cpp; this is a script, not a test.

    python bench/peer_llamacpp.py /tmp/m06/out --threads 2 -p 128 -n 64 --json-out peer.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / "build" / "peer"
QUANTS = ("Q4_0", "Q4_K_M")


def llama_cpp_source() -> Path | None:
    found = sorted(PEER.glob("llama_cpp_python-*/vendor/llama.cpp"))
    return found[-1] if found else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    source = llama_cpp_source()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "export_dir", type=Path, help="a mobq 8da4w export (its manifest names the source)"
    )
    parser.add_argument("--threads", "-t", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--prompt-tokens", "-p", type=int, default=128)
    parser.add_argument("--gen-tokens", "-n", type=int, default=64)
    parser.add_argument("--reps", "-r", type=int, default=3)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every engine N times, alternating which goes first: on a shared host the "
        "bandwidth moves by tens of percent within minutes, so a ratio needs several rounds",
    )
    parser.add_argument(
        "--bin", type=Path, default=PEER / "llama-build" / "bin", help="llama-bench, llama-quantize"
    )
    parser.add_argument(
        "--converter",
        type=Path,
        default=source / "convert_hf_to_gguf.py" if source else None,
        help="llama.cpp's convert_hf_to_gguf.py (from the llama-cpp-python sdist)",
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=REPO.parent / "shared" / "fixtures" / "tokenizers" / "qwen3",
        help="tokenizer the converter recognises, used when the checkpoint's own is synthetic",
    )
    parser.add_argument("--work", type=Path, default=PEER / "gguf", help="where GGUF files go")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--skip-mobq", action="store_true", help="only measure llama.cpp")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("default", "passive"),
        default="default",
        help="llama.cpp's OpenMP threads spin while waiting (default); on a machine other jobs "
        "share, spinning threads steal the cores their peers need: passive makes them sleep",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.reps < 1 or args.threads < 1:
        parser.error("--rounds, --reps and --threads must be positive")
    return args


# ---------------------------------------------------------------- GGUF files from the same checkpoint


def source_checkpoint(export_dir: Path) -> tuple[Path, dict[str, Any]]:
    from mobq.errors import InputError
    from mobq.manifest import load_manifest

    try:
        manifest = load_manifest(export_dir)
    except InputError as error:
        sys.exit(str(error))
    path = Path(manifest.model.source["path"])
    if not (path / "config.json").is_file():
        sys.exit(f"the export's source checkpoint is not on this machine: {path}")
    return path, manifest.model_dump(mode="json")


def _converter_input(checkpoint: Path, tokenizer: Path, work: Path) -> Path:
    """The checkpoint's weights and config with a tokenizer llama.cpp's converter recognises.

    Random-weight checkpoints may carry a small synthetic tokenizer; the converter identifies
    BPE pre-tokenizers by hash and refuses unknown ones. Speed does not depend on which tokens
    the vocabulary holds, only on its size, which comes from config.json either way.
    """
    staged = work / "hf-src"
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    for item in checkpoint.iterdir():
        if item.name.startswith("tokenizer"):
            continue
        (staged / item.name).symlink_to(item.resolve())
    own = json.loads((checkpoint / "tokenizer.json").read_text())
    synthetic = len(own.get("model", {}).get("vocab", {})) < 32000
    tokenizer_dir = (
        tokenizer if synthetic and (tokenizer / "tokenizer.json").is_file() else checkpoint
    )
    for item in tokenizer_dir.glob("tokenizer*"):
        shutil.copyfile(item, staged / item.name)
    return staged


def build_ggufs(args: argparse.Namespace, checkpoint: Path, key: str) -> dict[str, Path]:
    work = args.work / key
    work.mkdir(parents=True, exist_ok=True)
    f16 = work / "model-f16.gguf"
    quants = {quant: work / f"model-{quant}.gguf" for quant in QUANTS}
    # The f16 GGUF (8 GB at 4B) is only the quants' input: it may be deleted once they exist.
    if not f16.is_file() and not all(path.is_file() for path in quants.values()):
        staged = _converter_input(checkpoint, args.tokenizer, work)
        env = dict(os.environ)
        gguf_py = args.converter.parent / "gguf-py"  # the converter's own gguf package
        env["PYTHONPATH"] = f"{gguf_py}{os.pathsep}{env.get('PYTHONPATH', '')}"
        run(
            [
                sys.executable,
                str(args.converter),
                str(staged),
                "--outtype",
                "f16",
                "--outfile",
                str(f16),
            ],
            env=env,
        )
    for quant, path in quants.items():
        if not path.is_file():
            run([str(args.bin / "llama-quantize"), str(f16), str(path), quant, str(args.threads)])
    return quants


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), file=sys.stderr)
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(command)}\n{proc.stderr[-2000:]}")


# ---------------------------------------------------------------- measuring


def llama_bench(
    args: argparse.Namespace, model: Path, *, prompt: int, gen: int, depth: int
) -> tuple[dict, float]:
    """One llama-bench run (JSON out); returns its entry and the process's own peak RSS in MB."""
    command = [
        str(args.bin / "llama-bench"),
        "-m", str(model),
        "-t", str(args.threads),
        "-p", str(prompt),
        "-n", str(gen),
        "-d", str(depth),
        "-r", str(args.reps),
        "-o", "json",
    ]  # fmt: skip
    print("+", " ".join(command), file=sys.stderr)
    with (
        open(args.work / "llama-bench.out", "w+") as out,
        open(args.work / "llama-bench.err", "w+") as err,
    ):
        env = dict(os.environ)
        if args.omp_wait_policy == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"llama-bench failed ({proc.returncode}):\n{err.read()[-2000:]}")
        out.seek(0)
        entries = json.loads(out.read())
    return entries[0], usage.ru_maxrss / 1024


def measure_llama(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    pp, rss_pp = llama_bench(args, model, prompt=args.prompt_tokens, gen=0, depth=0)
    tg, rss_tg = llama_bench(args, model, prompt=0, gen=args.gen_tokens, depth=args.prompt_tokens)
    return {
        "file": str(model),
        "size_mb": round(model.stat().st_size / 1e6, 1),
        "prefill_tokens_per_sec": round(pp["avg_ts"], 2),
        "prefill_stddev": round(pp["stddev_ts"], 2),
        "decode_tokens_per_sec": round(tg["avg_ts"], 2),
        "decode_stddev": round(tg["stddev_ts"], 2),
        "peak_rss_mb": round(max(rss_pp, rss_tg), 1),
        "threads": pp["n_threads"],
        "build_commit": pp.get("build_commit"),
        "cpu_info": pp.get("cpu_info"),
    }


def measure_mobq(args: argparse.Namespace) -> dict[str, Any]:
    from mobq import benchmark as bench

    config = bench.BenchConfig(
        args.prompt_tokens, args.gen_tokens, args.threads, warmup=1, reps=args.reps
    )
    (result,) = bench.run(args.export_dir, [config], fresh_process=True)
    return {
        "file": str(args.export_dir / "model.pte"),
        "size_mb": result.model_size_mb,
        "prefill_tokens_per_sec": result.prefill_tokens_per_sec,
        "decode_tokens_per_sec": result.decode_tokens_per_sec,
        "peak_rss_mb": result.peak_rss_mb,
        "python_baseline_rss_mb": result.notes["python_baseline_rss_mb"],
        # The memory figure: peak less torch + pybindings, over the .pte's size.
        "above_imports_mb": result.notes.get("above_imports_mb"),
        "above_imports_per_pte": result.notes.get("above_imports_per_pte"),
        "ttft_ms": result.ttft_ms,
        "load_ms": result.load_ms,
        "threads": result.threads,
        "generated_tokens": result.generated_tokens,
        "ceiling": result.ceiling.model_dump() if result.ceiling else None,
        "result": result.model_dump(mode="json"),
    }


# ---------------------------------------------------------------- report


def versions(source: Path | None) -> dict[str, str]:
    from mobq import hostinfo

    found = {k: hostinfo.versions()[k] for k in ("mobq", "executorch", "torch", "torchao")}
    if source is not None:
        found["llama-cpp-python (sdist carrying llama.cpp)"] = source.parents[1].name.split("-")[-1]
    return found


def report(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'engine':<22} {'size MB':>8} {'prefill t/s':>12} {'decode t/s':>11} {'peak RSS MB':>12}"
        f" {'above imports':>14}"
    ]
    for name, row in rows.items():
        above = row.get("above_imports_mb")
        ratio = row.get("above_imports_per_pte")
        extra = f"{above:>7.0f} ({ratio:.2f}x)" if above is not None and ratio else f"{'-':>14}"
        lines.append(
            f"{name:<22} {row['size_mb']:>8.1f} {row['prefill_tokens_per_sec']:>12.1f} "
            f"{row['decode_tokens_per_sec']:>11.2f} {row['peak_rss_mb']:>12.0f} {extra}"
        )
    return "\n".join(lines)


MOBQ = "mobq 8da4w .pte"
BEST = "llama.cpp's best"  # the targets compare with the faster quant, per metric


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    mobq = rows.get(MOBQ)
    peers = {name: row for name, row in rows.items() if name != MOBQ}
    if mobq is None or not peers:
        return {}
    found = {
        name: {
            "prefill": round(mobq["prefill_tokens_per_sec"] / row["prefill_tokens_per_sec"], 3),
            "decode": round(mobq["decode_tokens_per_sec"] / row["decode_tokens_per_sec"], 3),
        }
        for name, row in peers.items()
    }
    found[BEST] = {
        metric: round(
            mobq[f"{metric}_tokens_per_sec"]
            / max(row[f"{metric}_tokens_per_sec"] for row in peers.values()),
            3,
        )
        for metric in ("prefill", "decode")
    }
    return found


def measure_round(args: argparse.Namespace, ggufs: dict[str, Path], index: int) -> dict:
    """Every engine once; every second round starts with llama.cpp, so drift favours no one."""
    order = ["mobq", *QUANTS]
    if index % 2:
        order = order[1:] + order[:1]
    rows: dict[str, dict[str, Any]] = {}
    for engine in order:
        if engine == "mobq" and not args.skip_mobq:
            rows[MOBQ] = measure_mobq(args)
        elif engine != "mobq":
            rows[f"llama.cpp {engine}"] = measure_llama(args, ggufs[engine])
    return {MOBQ: rows[MOBQ], **rows} if MOBQ in rows else rows


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """min / median / max of each ratio over the rounds."""
    per_round = [ratios(rows) for rows in rounds]
    return {
        name: {
            metric: {
                "min": min(r[name][metric] for r in per_round),
                "median": round(statistics.median(r[name][metric] for r in per_round), 3),
                "max": max(r[name][metric] for r in per_round),
            }
            for metric in ("prefill", "decode")
        }
        for name in per_round[0]
    }


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from mobq import hostinfo

    for tool in ("llama-bench", "llama-quantize"):
        if not (args.bin / tool).is_file():
            sys.exit(f"{args.bin / tool} is missing: build llama.cpp first (bench/README.md)")
    if args.converter is None or not args.converter.is_file():
        sys.exit(
            "llama.cpp's convert_hf_to_gguf.py not found: unpack the llama-cpp-python sdist (bench/README.md)"
        )
    checkpoint, manifest = source_checkpoint(args.export_dir)
    load_before = os.getloadavg()
    started = time.time()
    ggufs = build_ggufs(args, checkpoint, checkpoint.name)
    rounds = [measure_round(args, ggufs, index) for index in range(args.rounds)]
    rows = rounds[0]
    info = hostinfo.host()
    from mobq.benchmark import dispatch_isa

    result = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": manifest["model"]["name"],
        "architecture": manifest["model"]["params"],
        "scheme": manifest["export"]["scheme"],
        "ctx": manifest["export"]["ctx"],
        "checkpoint": str(checkpoint),
        "cpu": info["cpu"],
        "simd": info["simd"],
        # /proc/cpuinfo's flags above; what runtime dispatch saw (bench/avx2_only.py masks it)
        "runtime_dispatch_isa": dispatch_isa(),
        "cpuid_mask": os.environ.get("MOBQ_VISIBLE_ISA"),
        "llama_bench": str(args.bin / "llama-bench"),
        "cores": info["cores"],
        "threads": args.threads,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "reps": args.reps,
        "rounds": args.rounds,
        "llama_cpp_omp_wait_policy": args.omp_wait_policy,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - started, 1),
        "versions": versions(llama_cpp_source()),
        "engines": rows,
        "mobq_over_llamacpp": ratios(rows),
    }
    if args.rounds > 1:
        result["round_engines"] = rounds
        result["mobq_over_llamacpp_rounds"] = summarize(rounds)
    print(
        f"\n{result['model']} ({result['scheme']}, ctx {result['ctx']}) on {info['cpu']}, {args.threads} threads, "
        f"mobq's kernels for {result['runtime_dispatch_isa']}, llama-bench {args.bin}, "
        f"pp{args.prompt_tokens} / tg{args.gen_tokens} at depth {args.prompt_tokens}; "
        f"load average {result['load_average_before'][0]} -> {result['load_average_after'][0]}; "
        f"llama.cpp OMP wait policy: {args.omp_wait_policy}"
    )
    for index, round_rows in enumerate(rounds):
        if args.rounds > 1:
            print(f"round {index + 1}:")
        print(report(round_rows))
        for name, ratio in ratios(round_rows).items():
            print(f"mobq / {name}: prefill x{ratio['prefill']:.2f}, decode x{ratio['decode']:.2f}")
    for name, spread in result.get("mobq_over_llamacpp_rounds", {}).items():
        print(
            f"over {args.rounds} rounds, mobq / {name}: "
            + ", ".join(
                f"{metric} x{v['median']:.2f} [{v['min']:.2f}-{v['max']:.2f}]"
                for metric, v in spread.items()
            )
        )
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main(sys.argv[1:])
