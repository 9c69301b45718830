"""Is 8da4w decode bound by memory or by the int4 kernel? XNNPACK's GEMV in and out of cache.

A decoded token is one GEMV per linear (M = 1). This lowers chains of distinct square 8da4w
linears through ExecuTorch's XNNPACK partitioner (the cards' torchao config), sized to fit in
the last-level cache and far beyond it, and streams M = 1 rows through each. If the kernel
reads weights from cache no faster than from memory, decode is bound by the kernel's arithmetic
(unpacking int4, per-group scales), not by bandwidth, and a bandwidth ceiling cannot be reached.
Prints weight GB/s for each group size, chain and thread count, with the CPU and the read
bandwidth (mobq bench's probe) measured in the same run.

    python bench/gemv_bound.py --width 2560 --group-sizes 32,128 --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--width", type=int, default=2560, help="in = out features (Qwen3-4B: 2560)"
    )
    parser.add_argument("--group-sizes", default="32,128")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--in-cache-mb", type=float, default=8.0, help="chain size that fits L3")
    parser.add_argument("--out-of-cache-mb", type=float, default=400.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed per measurement")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    try:
        args.group_sizes = [int(g) for g in args.group_sizes.split(",")]
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error("--group-sizes and --threads take comma-separated whole numbers")
    if min(args.group_sizes) < 1 or min(args.threads) < 1:
        parser.error("group sizes and thread counts must be positive")
    if any(args.width % group for group in args.group_sizes):
        parser.error(f"--width {args.width} must be a multiple of every group size")
    return args


def weight_bytes(width: int, group: int) -> int:
    """int4 weights plus a bf16 scale per group, as XNNPACK packs them (one layer)."""
    return width * width // 2 + width * (width // group) * 2


def lowered_chain(width: int, group: int, layers: int, scratch: Path) -> Path:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerGroup, quantize_

    torch.manual_seed(0)
    chain = torch.nn.Sequential(
        *[torch.nn.Linear(width, width, bias=False) for _ in range(layers)]
    ).eval()
    quantize_(
        chain,
        Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4, weight_granularity=PerGroup(group)
        ),
    )
    exported = torch.export.export(chain, (torch.randn(1, width),))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    pte = scratch / f"chain-{width}-g{group}-{layers}.pte"
    pte.write_bytes(edge.to_executorch().buffer)
    return pte


def time_chain(pte: Path, width: int, threads: int, seconds: float) -> float:
    """Seconds per pass through the chain (M = 1), best of the timed passes."""
    import torch
    from executorch.extension.pybindings import portable_lib

    portable_lib._unsafe_reset_threadpool(threads)
    module = portable_lib._load_for_executorch(str(pte))
    row = torch.randn(1, width)
    for _ in range(3):
        module.forward((row,))
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        module.forward((row,))
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from mobq import hostinfo
    from mobq.benchmark import bandwidth_now, dispatch_isa
    from mobq.runtime import quiet_native_logs

    host = hostinfo.host()
    isa = dispatch_isa()
    print(f"{host['cpu']}, {host['cores']} cores, kernels for {isa}; width {args.width}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for group in args.group_sizes:
            per_layer = weight_bytes(args.width, group)
            for label, megabytes in (
                ("in cache", args.in_cache_mb),
                ("out of cache", args.out_of_cache_mb),
            ):
                layers = max(1, round(megabytes * 1e6 / per_layer))
                with quiet_native_logs():  # it also silences Python's stdout
                    pte = lowered_chain(args.width, group, layers, Path(scratch))
                for threads in args.threads:
                    with quiet_native_logs():
                        seconds = time_chain(pte, args.width, threads, args.seconds)
                    rows.append(
                        {
                            "group_size": group,
                            "chain": label,
                            "layers": layers,
                            "weight_mb": round(layers * per_layer / 1e6, 1),
                            "threads": threads,
                            "us_per_layer": round(seconds / layers * 1e6, 2),
                            "weight_gb_s": round(layers * per_layer / seconds / 1e9, 2),
                            "read_bandwidth_gb_s": bandwidth_now(threads),
                        }
                    )
                    print(
                        f"g{group:<4d} {label:12s} {rows[-1]['weight_mb']:7.1f} MB  "
                        f"{threads} threads: {rows[-1]['us_per_layer']:8.1f} us/layer, "
                        f"{rows[-1]['weight_gb_s']:6.1f} GB/s of weights "
                        f"(memory reads {rows[-1]['read_bandwidth_gb_s']:.1f} GB/s now)"
                    )
                pte.unlink()
    if args.json_out:
        record = {"host": host, "runtime_dispatch_isa": isa, "width": args.width, "rows": rows}
        args.json_out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
