"""Issue 9 at full size: gemma-3-4b (multimodal) with random weights, export + verify.

Wall time and peak RSS of the whole run (this process and its children), each stage's own
time and peak from the manifest, the .pte's size and methods, and the verification figures.

    PYTHONPATH=toolchain python bench/gemma_full_export.py OUT_DIR TOKENIZER_DIR [WORK_DIR]
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from mobq import hostinfo, progress
from mobq.pipeline import ExportRequest, export_model


class TimelineReporter(progress.SilentReporter):
    """Stage starts and ends with wall time and RSS, flushed as they happen.

    A run cut short (a lease that ends) still leaves each finished stage's time in the log.
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self.started = time.perf_counter()

    def _write(self, line: str) -> None:
        stamp = time.perf_counter() - self.started
        with self.log.open("a") as f:
            f.write(f"{stamp:8.1f}s peak-rss-gb {peak_rss_gb()} {line}\n")

    def stage_start(self, name: str, detail: str) -> None:
        self._write(f"start {name} {detail}")

    def stage_end(self, name: str, seconds: float, note: str) -> None:
        self._write(f"end {name} {seconds:.1f}s {note}")

    def info(self, message: str) -> None:
        self._write(f"info {message}")


def peak_rss_gb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    return {"self": round(own, 2), "children": round(children, 2)}


def main(out: Path, tokenizer: Path, work: Path) -> None:
    started = time.perf_counter()
    progress.set_reporter(TimelineReporter(out / "timeline.log"))
    result: dict[str, object] = {"host": hostinfo.host(), "versions": hostinfo.versions()}
    try:
        export_dir, _ = export_model(
            ExportRequest(
                model="gemma-3-4b",
                random_weights=True,
                tokenizer=tokenizer,
                ctx=1024,
                out=work / "gemma-3-4b-8da4w-ctx1024",
                force=True,
            )
        )
        data = json.loads((export_dir / "manifest.json").read_text())
        result.update(
            stages=[
                {k: s.get(k) for k in ("name", "seconds", "peak_rss_mb", "detail")}
                for s in data["stages"]
            ],
            files={f["path"]: f["bytes"] for f in data["files"]},
            verification=data["verification"],
            quantization=data["quantization"],
            image=data["image"],
        )
        (out / "manifest.json").write_text(json.dumps(data, indent=2))
    except Exception as exc:  # keep the partial figures
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_gb"] = peak_rss_gb()
    (out / "gemma-3-4b-full.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str)[:4000], flush=True)


if __name__ == "__main__":
    work = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("/tmp/gemma-full")
    main(Path(sys.argv[1]), Path(sys.argv[2]), work)
