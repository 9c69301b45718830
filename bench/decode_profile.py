"""Where a decoded token's time goes: ExecuTorch's own per-operator profile of one export.

Loads the export's .pte with ETDump profiling on (the pybindings carry the event tracer, and
XNNPACK reports each of its operators inside a delegate), prefills a prompt, decodes N tokens
one at a time, and aggregates the events of the decode steps by operator kind: XNNPACK's
("Fully Connected (NC, QDU8, F32, QB4W) GEMM", "Transpose (ND, X32)", ...) and the portable or
custom kernels' ("llama::custom_sdpa.out", "native_call_embedding_byte.out", ...). Prints ms
per decoded token, calls per token and the share of the step, with the CPU.

Profiling adds a little per event, so the step time here is a few % above `mobq bench`'s;
the shares are what this is for (the fused KV-cache transposes were found this way).

    python bench/decode_profile.py /tmp/m4b --threads 2 --prompt-tokens 128 --steps 16
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
    parser.add_argument("--steps", "-n", type=int, default=16, help="decoded tokens profiled")
    parser.add_argument("--top", type=int, default=15, help="operator kinds listed")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    if not (args.export_dir / "manifest.json").is_file():
        parser.error(f"{args.export_dir} is not a mobq export (no manifest.json)")
    if args.threads < 1 or args.prompt_tokens < 1 or args.steps < 1:
        parser.error("--threads, --prompt-tokens and --steps must be positive")
    return args


def run_profiled(pte: Path, args: argparse.Namespace, vocab: int, etdump: Path) -> list[float]:
    """Prefill, then decode greedily; returns each decode step's wall ms."""
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
        for step in range(args.steps):
            token = int(logits.reshape(-1, vocab)[-1].argmax())
            position = torch.tensor([args.prompt_tokens + step])
            started = time.perf_counter()
            logits = module.forward((torch.tensor([[token]]), position))[0]
            step_ms.append((time.perf_counter() - started) * 1000)
        module.write_etdump_result_to_file(str(etdump))
    return step_ms


def aggregate(etdump: Path, steps: int) -> dict[str, dict[str, float]]:
    """ms and calls per decoded token for each operator kind (runs after the prefill)."""
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
            decode_runs = event.perf_data.raw[-steps:]  # run 0 is the prefill
            kind = INSTANCE_SUFFIX.sub("", event.name)
            totals[kind]["ms"] += sum(decode_runs) / steps
            totals[kind]["calls"] += len(decode_runs) / steps
    return dict(totals)


def report(kinds: dict[str, dict[str, float]], step_ms: list[float], top: int) -> str:
    step = kinds.get("Method::execute", {"ms": sum(step_ms) / len(step_ms)})["ms"]
    lines = [f"decode step: {step:.1f} ms in the method ({sum(step_ms) / len(step_ms):.1f} wall)"]
    for name in UMBRELLAS[1:]:
        if name in kinds:
            lines.append(f"  {name}: {kinds[name]['ms']:.1f} ms, {kinds[name]['calls']:.0f} calls")
    lines.append(f"{'operator kind':58s} {'ms/token':>9s} {'calls':>6s} {'share':>6s}")
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
    print(f"{pte} on {host['cpu']} ({host['cores']} cores), {args.threads} threads")
    with tempfile.TemporaryDirectory() as scratch:
        etdump = Path(scratch) / "decode.etdp"
        step_ms = run_profiled(pte, args, vocab, etdump)
        kinds = aggregate(etdump, args.steps)
    print(report(kinds, step_ms, args.top))
    if args.json_out:
        record: dict[str, Any] = {
            "export": str(args.export_dir),
            "model": manifest.model.name,
            "pte_bytes": pte.stat().st_size,
            "host": host,
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
