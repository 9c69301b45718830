"""Export memory and time: one `mobq export --random-weights` in a child, measured from outside.

Reports the wall time, the peak memory of the whole process tree (every descendant's PSS
summed, sampled every 0.1 s, so a stage run in a helper process still counts and pages a forked
helper shares with its parent count once; the plain RSS sum is recorded too), the child's own
ru_maxrss (os.wait4), each stage's peak from the manifest, the CPU model and the load average
(other processes on the machine slow the export down; memory does not depend on them).

A fresh stage cache is used unless --cache is given, so every stage runs. --layers N exports
the recipe's architecture with N decoder layers: a fast proxy (memory per layer and the
embeddings scale predictably). Figures are in docs/performance.md ("Export memory and time").

    python bench/export_memory.py qwen3-0.6b --ctx 512 --scheme 8da4w --json-out m06.json
    python bench/export_memory.py qwen3-0.6b --layers 2        # proxy, a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "toolchain"))  # this checkout's mobq, not an install elsewhere
SAMPLE_SECONDS = 0.1
# Reading smaps_rollup walks the process's page tables: 0.25 s for a 13 GB process. Sampling
# waits at least this many times as long as the last sample took, so that the measurement
# takes at most ~1/(1+SAMPLE_COST_RATIO) of one core from the 2-core machine it measures.
SAMPLE_COST_RATIO = 20


def _extended_flag(args: argparse.Namespace) -> list[str]:
    if args.extended_ops is None:
        return []
    return ["--extended-ops" if args.extended_ops else "--no-extended-ops"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a recipe name (its architecture, random weights)")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--scheme", default="8da4w")
    parser.add_argument("--layers", type=int, help="proxy: this many decoder layers")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer directory for the build")
    parser.add_argument("--cache", type=Path, help="stage cache (default: a fresh one)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here")
    parser.add_argument(
        "--extended-ops",
        dest="extended_ops",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="XNNPACK's general partitioner on or off [mobq's default for the program]",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child_main(args: argparse.Namespace) -> None:
    """Inside the measured process: the CLI's own export, with the proxy's layer count."""
    from mobq import recipes
    from mobq.cli import main

    if args.layers:
        original = recipes.get_recipe

        def fewer_layers(name: str) -> Any:
            recipe = original(name)
            architecture = {**recipe.architecture, "num_hidden_layers": args.layers}
            return recipe.model_copy(update={"architecture": architecture})

        recipes.get_recipe = fewer_layers  # type: ignore[assignment]
    argv = ["export", args.model, "--random-weights", "--ctx", str(args.ctx)]
    argv += ["--scheme", args.scheme, "--out", str(args.out), "--force"]
    if args.tokenizer:
        argv += ["--tokenizer", str(args.tokenizer)]
    argv += _extended_flag(args)
    sys.argv = ["mobq", *argv]
    main()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _memory_mb(pid: int) -> tuple[float, float]:
    """(Rss, Pss) of one process in MB; Pss shares each shared page among its users."""
    found = {"Rss:": 0.0, "Pss:": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                key = line.split(maxsplit=1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["Rss:"], found["Pss:"]


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")[:80].strip()
    except OSError:
        return ""


def tree_memory_mb(root: int) -> tuple[float, float, dict[int, str], dict[int, float]]:
    """Rss and Pss of `root` and all its descendants, summed, who they were and each one's Pss.

    Forked helpers (e.g. compile workers) share the parent's pages: summing their Rss counts
    those pages twice, summing Pss counts them once. Pss is the figure reported.

    A vfork()ed child is different: until it execs it runs in its parent's address space, so
    /proc shows it with the parent's very memory (Pss included). Python's subprocess starts
    every `flatc` that ExecuTorch runs per XNNPACK delegate that way; such a child (the parent's
    command line, the parent's exact Rss and Pss) is listed but not counted again.
    """
    tree, rss, pss, todo, seen, each = _children(), 0.0, 0.0, [(root, None)], {}, {}
    while todo:
        pid, parent = todo.pop()
        one_rss, one_pss = _memory_mb(pid)
        seen[pid] = _name(pid)
        if parent is not None and (seen[pid], one_rss, one_pss) == parent:
            one_rss = one_pss = 0.0  # the parent's own address space, shared by vfork
        rss, pss = rss + one_rss, pss + one_pss
        each[pid] = one_pss
        todo.extend((child, (seen[pid], one_rss, one_pss)) for child in tree.get(pid, []))
    return rss, pss, seen, each


class TreeSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_rss_mb, self.peak_pss_mb = 0.0, 0.0
        self.processes: dict[int, str] = {}
        # The sample at the tree's PSS peak: (unix time, {pid: Pss MB}).
        self.peak_at: tuple[float, dict[int, float]] = (0.0, {})
        self.per_process_peak_mb: dict[int, float] = {}
        self.timeline: list[tuple[float, dict[int, float]]] = []  # one sample per second

    def run(self) -> None:
        last_kept = 0.0
        self.samples, self.sampling_seconds = 0, 0.0
        while not self.stop.is_set():
            now, began = time.time(), time.perf_counter()
            rss, pss, seen, each = tree_memory_mb(self.pid)
            cost = time.perf_counter() - began
            self.samples, self.sampling_seconds = self.samples + 1, self.sampling_seconds + cost
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            if pss > self.peak_pss_mb:
                self.peak_pss_mb, self.peak_at = pss, (now, each)
            for pid, one in each.items():
                self.per_process_peak_mb[pid] = max(self.per_process_peak_mb.get(pid, 0.0), one)
            # A process that has just exited reads as an empty command line: keep the name seen.
            self.processes.update({pid: name for pid, name in seen.items() if name})
            if now - last_kept >= 1.0:
                self.timeline.append((now, each))
                last_kept = now
            self.stop.wait(max(SAMPLE_SECONDS, SAMPLE_COST_RATIO * cost))


def measured_run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command` and measure its whole process tree from outside until it exits."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    sampler = TreeSampler(process.pid)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall": wall,
        "sampler": sampler,
        "usage": usage,
        "load_before": load_before,
    }


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from mobq import hostinfo, phaselog

    out, phase_log = workdir / "out", workdir / "phases.jsonl"
    env = {**os.environ, "MOBQ_CACHE": str(args.cache or workdir / "cache"), "COLUMNS": "200"}
    env["MOBQ_PHASE_LOG"] = str(phase_log)  # every mobq process logs its stages and steps
    # This checkout's mobq in every process of the tree, the lowering child included (an
    # editable install elsewhere, e.g. a worktree sharing main's venv, would win otherwise).
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "toolchain"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child", args.model]
    command += ["--ctx", str(args.ctx), "--scheme", args.scheme, "--out", str(out)]
    command += ["--layers", str(args.layers)] if args.layers else []
    command += ["--tokenizer", str(args.tokenizer)] if args.tokenizer else []
    command += _extended_flag(args)
    started = time.time()
    run = measured_run(command, env)
    code, wall, sampler, usage, load_before = (
        run["exit_code"],
        run["wall"],
        run["sampler"],
        run["usage"],
        run["load_before"],
    )
    # A failed export (e.g. verification below its gate) writes no manifest; what was measured
    # from outside is still worth keeping.
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if code == 0 else {"stages": []}
    pte = out / "model.pte"
    return {
        "model": args.model,
        "exit_code": code,
        "layers": args.layers or manifest.get("model", {}).get("params", {}).get("n_layers"),
        "ctx": args.ctx,
        "scheme": args.scheme,
        "wall_s": round(wall, 1),
        "tree_peak_pss_mb": round(sampler.peak_pss_mb, 1),
        "tree_peak_rss_sum_mb": round(sampler.peak_rss_mb, 1),
        "processes": sorted(set(sampler.processes.values())),
        "at_peak": at_peak(sampler, phase_log, started),
        "process_peaks_pss_mb": {
            f"{pid} {sampler.processes.get(pid, '?')}": round(mb, 1)
            for pid, mb in sorted(sampler.per_process_peak_mb.items())
        },
        "phase_log": [
            [round(e["t"] - started, 1), e["pid"], e["event"], e["kind"], e["name"]]
            for e in phaselog.read(phase_log)
        ],
        "timeline_pss_mb": [
            [round(t - started, 1), {str(pid): round(mb) for pid, mb in each.items()}]
            for t, each in sampler.timeline
        ],
        "child_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_user_s": round(usage.ru_utime, 1),
        "cpu_sys_s": round(usage.ru_stime, 1),
        "samples": sampler.samples,
        "sampling_s": round(sampler.sampling_seconds, 1),
        "stages": [
            {k: s.get(k) for k in ("name", "seconds", "peak_rss_mb", "cached")}
            for s in manifest["stages"]
        ],
        "pte_bytes": pte.stat().st_size if pte.exists() else None,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "host": manifest.get("host") or hostinfo.host(),
        "versions": manifest.get("versions"),
    }


def at_peak(sampler: TreeSampler, phase_log: Path, started: float) -> dict[str, Any]:
    """The tree's PSS peak: when, and each process's Pss and open stages/steps at that moment."""
    from mobq import phaselog

    when, each = sampler.peak_at
    phases = phaselog.phases_at(phaselog.read(phase_log), when)
    return {
        "t_s": round(when - started, 1) if when else None,
        "processes": [
            {
                "pid": pid,
                "command": sampler.processes.get(pid, "?"),
                "pss_mb": round(mb, 1),
                "phases": phases.get(pid, []),
            }
            for pid, mb in sorted(each.items(), key=lambda item: -item[1])
        ],
    }


def show(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} ({result['layers']} layers), {result['scheme']}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("peak RSS MB", justify="right")
    for stage in result["stages"]:
        table.add_row(stage["name"], f"{stage['seconds']:.1f}", f"{stage['peak_rss_mb'] or 0:.0f}")
    table.add_row(
        "[bold]whole tree (PSS)[/]", f"{result['wall_s']:.1f}", f"{result['tree_peak_pss_mb']:.0f}"
    )
    console = Console()
    console.print(table)
    host = result.get("host") or {}
    console.print(
        f"cpu {host.get('cpu')} ({host.get('cores')} cores), load {result['load_avg_before']} -> "
        f"{result['load_avg_after']}, child ru_maxrss {result['child_maxrss_mb']:.0f} MB, "
        f"user CPU {result['cpu_user_s']:.0f} s, .pte {(result['pte_bytes'] or 0) / 1e6:.1f} MB, "
        f"tree RSS summed {result['tree_peak_rss_sum_mb']:.0f} MB over "
        f"{len(result['processes'])} distinct command lines"
    )
    peak = result["at_peak"]
    console.print(f"at the tree's peak (t = {peak['t_s']} s):")
    for one in peak["processes"]:
        where = " > ".join(one["phases"]) or "-"
        console.print(
            f"  {one['pss_mb']:7.0f} MB  pid {one['pid']} {one['command'][:60]}  [{where}]",
            markup=False,
        )


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return
    with tempfile.TemporaryDirectory(prefix="mobq-export-memory-") as workdir:
        result = measure(args, Path(workdir))
    show(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    if result["exit_code"] != 0:
        raise SystemExit(f"the export failed (exit {result['exit_code']}); its output is above")


if __name__ == "__main__":
    main(sys.argv[1:])
