"""Wall time and peak memory of one sweep plan run sequentially and on a local Ray, side by side.

    python bench/sweep_timing.py [--cpus 2] [--json-out build/sweep-timing.json]

The plan is the test suite's: two tiny random-weight Qwen3 models (tied and untied) x
{8da4w, fp32}, export (always verified) only. Each mode gets its own fresh stage cache, so
neither reuses the other's work. Peak memory is the machine's (MemTotal - MemAvailable,
sampled every 0.2 s) above what was in use before the run: Ray's workers are separate processes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def used_memory_mb() -> float:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


class PeakSampler:
    def __init__(self) -> None:
        self.baseline = used_memory_mb()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, used_memory_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build_models(root: Path) -> list[str]:
    from mobq import tinylm
    from mobq.recipes import get_recipe

    architecture = get_recipe("qwen3-0.6b").architecture
    models = []
    for name, tied in (("qwen3-tied", True), ("qwen3-untied", False)):
        spec = tinylm.TinySpec(tie_word_embeddings=tied)
        models.append(str(tinylm.build_tiny_model(architecture, root / name, spec=spec)))
    return models


def run_mode(mode: str, models: list[str], root: Path, cpus: int) -> dict[str, Any]:
    from mobq import sweep

    os.environ["MOBQ_CACHE"] = str(root / f"cache-{mode}")
    plan = sweep.SweepPlan(models=models, schemes=["8da4w", "fp32"], ctx=[64])
    out = str(root / f"runs-{mode}")
    jobs = sweep.expand(plan, out, cpus_per_job=1)
    with PeakSampler() as sampler:
        start = time.perf_counter()
        if mode == "ray":
            summary = sweep.run_sweep(jobs, out, cpus=cpus)
        else:
            summary = sweep.run_sequential(jobs, out)
        wall = time.perf_counter() - start
    return {
        "mode": mode,
        "wall_s": round(wall, 1),
        "peak_mb_above_baseline": round(sampler.peak - sampler.baseline, 0),
        "statuses": sorted(j.status for j in summary.jobs),
        "cell_seconds": {j.name: j.seconds for j in summary.jobs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    from mobq import hostinfo

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="mobq-sweep-timing-") as scratch:
        root = Path(scratch)
        models = build_models(root)
        results = [run_mode(mode, models, root, args.cpus) for mode in ("sequential", "ray")]
    report = {
        "host": hostinfo.host(),
        "load_average": os.getloadavg(),
        "cpus": args.cpus,
        "results": results,
        "ray_speedup": round(results[0]["wall_s"] / results[1]["wall_s"], 2),
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
