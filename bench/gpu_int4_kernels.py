"""Issue 8: int4 matmul kernels on one GPU, at Qwen3-8B's linear shapes, batch 1 and prefill.

The same int4 values, scales and zeros (group 128) through tinygemm (`_weight_int4pack_mm`,
torchao's tile_packed_to_4d), FBGEMM's CUTLASS mixed-input GEMM on preshuffled int4
(`bf16i4bf16_shuffled`), mobq's prefill path (dequantize the packed weight, then bf16 cuBLAS;
`dequant_only` is the dequantization alone), GemLite when installed, and bf16 cuBLAS, side by
side. Each kernel's output is checked against the dequantized matmul first; the tile-packed ->
FBGEMM conversion (`mobq.server.int4_gpu.tinygemm_to_fbgemm`) is checked to recover the int4 values
exactly. Times: CUDA-graph replays of 50 calls, median of 10, per call.

    PYTHONPATH=toolchain:/tmp/site python bench/gpu_int4_kernels.py OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from mobq.server import int4_gpu

GROUP = 128
# Qwen3-8B: q/o, k/v, gate/up, down, lm_head as (out_features, in_features).
SHAPES = {
    "q_proj/o_proj": (4096, 4096),
    "k_proj/v_proj": (1024, 4096),
    "gate/up_proj": (12288, 4096),
    "down_proj": (4096, 12288),
    "lm_head": (151936, 4096),
}
ROWS = (1, 256)
try:
    import gemlite  # noqa: F401

    HAVE_GEMLITE = True
except ImportError:
    HAVE_GEMLITE = False


def graph_time_us(fn, calls: int = 50, reps: int = 10) -> float:
    """Median microseconds per call over CUDA-graph replays (no launch overhead)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000 / calls)
    return statistics.median(times)


def one_shape(n: int, k: int) -> dict[str, object]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randint(0, 16, (n, k), device="cuda", generator=gen, dtype=torch.int32)
    scale = (torch.rand(k // GROUP, n, device="cuda", generator=gen) * 0.02 + 0.001).bfloat16()
    zero = (torch.randn(k // GROUP, n, device="cuda", generator=gen) * 0.01).bfloat16()
    dense = ((q.T.float() - 8) * scale.float().repeat_interleave(GROUP, 0)).T
    dense = (dense + zero.float().repeat_interleave(GROUP, 0).T).bfloat16()  # [n, k]

    packed = int4_gpu.tinygemm_pack(q)
    scale_and_zero = torch.stack([scale, zero], dim=-1).contiguous()  # [k/g, n, 2]
    linear = int4_gpu.PlainInt4Linear(packed, scale_and_zero, GROUP, n, k)
    fb = int4_gpu.tinygemm_to_fbgemm(packed, scale_and_zero, GROUP, n, k, keep_int_values=True)
    recovered = bool(torch.equal(fb.int_values.to(torch.int32), (q - 8).to(torch.int32)))
    shuffled_w, shuffled_scale = torch.ops.fbgemm.preshuffle_i4(fb.qdata, fb.scale)
    gemlite = int4_gpu.gemlite_linear(linear) if HAVE_GEMLITE else None

    kernels = {
        "bf16": lambda x: torch.nn.functional.linear(x, dense),
        "tinygemm": lambda x: torch.ops.aten._weight_int4pack_mm(x, packed, GROUP, scale_and_zero),
        "fbgemm_shuffled": lambda x: torch.ops.fbgemm.bf16i4bf16_shuffled(
            x, shuffled_w, shuffled_scale, fb.zero
        ),
        # mobq's prefill path: dequantize the packed weight for this call, then cuBLAS.
        "dequant_dense": lambda x: torch.nn.functional.linear(x, linear.dense_weight()),
        "dequant_only": lambda x: linear.dense_weight(),
        "gemlite": lambda x: gemlite(x),
    }
    result: dict[str, object] = {
        "n": n,
        "k": k,
        "int_values_recovered": recovered,
        "layout_rows": linear.layout.rows if linear.layout else None,
    }
    for rows in ROWS:
        x = torch.randn(rows, k, device="cuda", generator=gen).bfloat16()
        reference = torch.nn.functional.linear(x.float(), dense.float())
        for name, fn in kernels.items():
            try:
                out = fn(x) if name != "dequant_only" else linear(x)
                err = float((out.float() - reference).abs().max() / reference.abs().max())
                micros = graph_time_us(lambda fn=fn, x=x: fn(x))
                bytes_read = (n * k * (2 if name == "bf16" else 0.5)) + rows * k * 2
                result[f"{name}_m{rows}"] = {
                    "us": round(micros, 1),
                    "rel_err": round(err, 5),
                    "gb_per_s": round(bytes_read / micros / 1e3, 1),
                }
            except Exception as exc:  # one kernel failing must not lose the others
                result[f"{name}_m{rows}"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return result


def main(out: Path) -> None:
    import fbgemm_gpu.experimental.gen_ai  # noqa: F401  registers torch.ops.fbgemm.*

    if HAVE_GEMLITE:
        print("gemlite configs:", int4_gpu.load_gemlite_tuning(torch.cuda.get_device_name(0)))

    results: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "fbgemm_gpu_genai": getattr(sys.modules.get("fbgemm_gpu"), "__version__", "?"),
    }
    for name, (n, k) in SHAPES.items():
        results[name] = one_shape(n, k)
        print(name, json.dumps(results[name]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-int4-kernels.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
