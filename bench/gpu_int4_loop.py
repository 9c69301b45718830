"""Issue 8 on a GPU: Qwen3-8B random weights, bf16 vs int4-hqq through mobq's compiled loop.

The same functions as `mobq bench-gpu qwen3-8b --random-weights --decoder loop`, with the
variants side by side in one run: bf16, int4 with plain linears (tinygemm for decoding, the
weight dequantized for a dense prefill), the same with tinygemm for prefill too, and GemLite's
Triton kernels on the same int4 values (`--int4-kernel gemlite`).

    PYTHONPATH=toolchain:/tmp/site python bench/gpu_int4_loop.py OUT_DIR [TOKENIZER_DIR]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mobq import quantize
from mobq.schemes import SCHEMES
from mobq.server import gpu_bench

WORK = Path("/tmp/bench")
T0 = time.time()


def log(message: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {message}", flush=True)


def main(out: Path, tokenizer: Path | None) -> None:
    bf16, int4 = WORK / "qwen3-8b-bf16", WORK / "qwen3-8b-int4-hqq"
    if not (bf16 / "config.json").is_file():
        gpu_bench.random_checkpoint("qwen3-8b", bf16, tokenizer)
    log("bf16 random checkpoint ready")
    if not (int4 / "config.json").is_file():
        quantize.quantize_checkpoint(
            bf16, int4, SCHEMES["int4-hqq"], source_id="qwen3-8b (random weights)"
        )
    log("int4-hqq checkpoint ready")
    loop = gpu_bench.BenchSettings(runs=3, warmup=2, decoder="loop")
    tinygemm_prefill = gpu_bench.BenchSettings(
        runs=3, warmup=2, decoder="loop", dense_prefill=False
    )
    gemlite = gpu_bench.BenchSettings(runs=3, warmup=2, decoder="loop", int4_kernel="gemlite")
    variants = {
        "bf16-loop": (bf16, loop, {}),
        "int4-loop-gemlite": (int4, gemlite, {}),
        "int4-loop-plain": (int4, loop, {}),  # dense prefill (dequantize + cuBLAS)
        "int4-loop-tinygemm-prefill": (int4, tinygemm_prefill, {}),
    }
    results: dict[str, object] = {"gpu": gpu_bench.require_cuda()}
    for name, (model_dir, settings, env) in variants.items():
        saved = dict(os.environ)
        os.environ.update(env)  # the measuring child inherits it
        try:
            results[name] = gpu_bench.measure_isolated(model_dir, settings)
        except Exception as exc:  # one variant failing must not lose the others' figures
            results[name] = {"error": str(exc)}
        finally:
            os.environ.clear()
            os.environ.update(saved)
        log(f"{name}: {json.dumps(results[name])[:700]}")
        (out / "gpu-int4-loop.json").write_text(json.dumps(results, indent=2))
    base, quant = results["bf16-loop"], results["int4-loop-plain"]
    if (
        isinstance(base, dict)
        and isinstance(quant, dict)
        and "latency_s" in base
        and "latency_s" in quant
    ):
        summary = gpu_bench.compare(results["gpu"], loop, quant, base)
        results["summary"] = {k: summary[k] for k in ("versions", "memory_reduction", "speedup")}
        log(f"summary: {results['summary']}")
    (out / "gpu-int4-loop.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
