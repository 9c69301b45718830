"""Where a decoded token's (or a prefill's) time goes: ExecuTorch's per-operator profile.

Loads the export's .pte with ETDump profiling on (the pybindings carry the event tracer, and
XNNPACK reports each of its operators inside a delegate), prefills a prompt, decodes N tokens
one at a time, and aggregates the events of the decode steps by operator kind: XNNPACK's
("Fully Connected (NC, QDU8, F32, QB4W) GEMM", "Transpose (ND, X32)", ...) and the portable or
custom kernels' ("llama::custom_sdpa.out", "native_call_embedding_byte.out", ...). Prints ms
per decoded token, calls per token and the share of the step, with the CPU.

`--phase prefill` profiles N prefills of the prompt instead (each from position 0) and reports
ms per prompt token: where prefill's time goes, e.g. under bench/avx2_only.py.

Profiling adds a little per event, so the step time here is a few % above `mobq bench`'s;
the shares are what this is for (the fused KV-cache transposes were found this way).

    python bench/decode_profile.py /tmp/m4b --threads 2 --prompt-tokens 128 --steps 16
    python bench/decode_profile.py /tmp/m06 --phase prefill --steps 3
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# Events that wrap others: reported as totals, not as operators.
UMBRELLAS = ("Method::execute", "DELEGATE_CALL", "OPERATOR_CALL")
INSTANCE_SUFFIX = re.compile(r" #\d+$")  # XNNPACK numbers operators of one kind in a delegate


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path, help="a mobq export (model.pte + manifest)")
    parser.add_argument("--threads", "-t", type=int, default=2)
    parser.add_argument("--prompt-tokens", "-p", type=int, default=128)
    parser.add_argument(
        "--steps", "-n", type=int, default=16, help="decoded tokens (or prefills) profiled"
    )
    parser.add_argument("--phase", choices=("decode", "prefill"), default="decode")
    parser.add_argument("--top", type=int, default=15, help="operator kinds listed")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    if not (args.export_dir / "manifest.json").is_file():
        parser.error(f"{args.export_dir} is not a mobq export (no manifest.json)")
    if args.threads < 1 or args.prompt_tokens < 1 or args.steps < 1:
        parser.error("--threads, --prompt-tokens and --steps must be positive")
    return args


def run_profiled(pte: Path, args: argparse.Namespace, vocab: int, etdump: Path) -> list[float]:
    """Prefill, then decode greedily; returns each profiled step's wall ms (for the prefill
    phase: N prefills, each from position 0, and no decoding)."""
    import torch
    from executorch.extension.pybindings import portable_lib

    from mobq.runtime import load_ops, quiet_native_logs

    load_ops()
    with quiet_native_logs():
        portable_lib._unsafe_reset_threadpool(args.threads)
        module = portable_lib._load_for_executorch(str(pte), enable_etdump=True)
        prompt = torch.arange(args.prompt_tokens, dtype=torch.long).reshape(1, -1) % vocab
        logits = module.forward((prompt, torch.tensor([0])))[0]
        step_ms = []
        for _ in range(args.steps if args.phase == "prefill" else 0):
            started = time.perf_counter()
            module.forward((prompt, torch.tensor([0])))
            step_ms.append((time.perf_counter() - started) * 1000)
        for step in range(args.steps if args.phase == "decode" else 0):
            token = int(logits.reshape(-1, vocab)[-1].argmax())
            position = torch.tensor([args.prompt_tokens + step])
            started = time.perf_counter()
            logits = module.forward((torch.tensor([[token]]), position))[0]
            step_ms.append((time.perf_counter() - started) * 1000)
        module.write_etdump_result_to_file(str(etdump))
    return step_ms


def aggregate(etdump: Path, steps: int, per: int = 1) -> dict[str, dict[str, float]]:
    """ms and calls per token for each operator kind, over the last `steps` runs (run 0 is
    the first prefill); `per` tokens in each run (the prompt's length for prefills)."""
    from executorch.devtools import Inspector

    from mobq.runtime import quiet_native_logs

    with quiet_native_logs():
        inspector = Inspector(etdump_path=str(etdump))
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"ms": 0.0, "calls": 0.0})
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for event in block.events:
            if event.perf_data is None:
                continue
            runs = event.perf_data.raw[-steps:]
            kind = INSTANCE_SUFFIX.sub("", event.name)
            totals[kind]["ms"] += sum(runs) / steps / per
            totals[kind]["calls"] += len(runs) / steps
    return dict(totals)


def report(kinds: dict[str, dict[str, float]], step_ms: list[float], top: int, per: int = 1) -> str:
    wall = sum(step_ms) / len(step_ms) / per
    step = kinds.get("Method::execute", {"ms": wall})["ms"]
    what = "decode step" if per == 1 else f"prefill of {per}, per token"
    lines = [f"{what}: {step:.2f} ms in the method ({wall:.2f} wall)"]
    for name in UMBRELLAS[1:]:
        if name in kinds:
            lines.append(f"  {name}: {kinds[name]['ms']:.1f} ms, {kinds[name]['calls']:.0f} calls")
    calls = "calls" if per == 1 else "calls/run"
    lines.append(f"{'operator kind':58s} {'ms/token':>9s} {calls:>6s} {'share':>6s}")
    operators = {k: v for k, v in kinds.items() if k not in UMBRELLAS}
    for name, figures in sorted(operators.items(), key=lambda kv: -kv[1]["ms"])[:top]:
        share = figures["ms"] / step if step else 0.0
        lines.append(f"{name[:58]:58s} {figures['ms']:9.2f} {figures['calls']:6.0f} {share:6.1%}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from mobq import hostinfo
    from mobq.manifest import load_manifest

    manifest = load_manifest(args.export_dir)
    pte = manifest.checked_path(args.export_dir, "program")
    vocab = int(manifest.model.params["vocab_size"])
    host = hostinfo.host()
    from mobq.benchmark import dispatch_isa

    isa = dispatch_isa()  # what runtime dispatch sees (bench/avx2_only.py can mask it)
    print(
        f"{pte} on {host['cpu']} ({host['cores']} cores, kernels for {isa}), {args.threads} threads"
    )
    per = args.prompt_tokens if args.phase == "prefill" else 1
    with tempfile.TemporaryDirectory() as scratch:
        etdump = Path(scratch) / "profile.etdp"
        step_ms = run_profiled(pte, args, vocab, etdump)
        kinds = aggregate(etdump, args.steps, per)
    print(report(kinds, step_ms, args.top, per))
    if args.json_out:
        record: dict[str, Any] = {
            "export": str(args.export_dir),
            "model": manifest.model.name,
            "pte_bytes": pte.stat().st_size,
            "host": host,
            "runtime_dispatch_isa": isa,
            "phase": args.phase,
            "threads": args.threads,
            "prompt_tokens": args.prompt_tokens,
            "steps": args.steps,
            "step_wall_ms": [round(ms, 2) for ms in step_ms],
            "per_token": {
                k: {"ms": round(v["ms"], 3), "calls": v["calls"]} for k, v in kinds.items()
            },
        }
        args.json_out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
