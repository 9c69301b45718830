"""Run the export stage's lowering in a child interpreter, so its memory ends with it.

torch.export keeps the traced weights alive after it returns (its fake-tensor bookkeeping
holds them: ShapeEnv.tracked_fakes -> SymNode -> dispatch-cache keys), and lowering leaves
freed-but-fragmented heap behind. In one process, verification then starts on top of all
that. In a child, the export's peak is its own and verify starts from a clean parent.

The request and the result travel as JSON (paths, ExportOptions, the constant methods), never
as pickles. A MobqError raised in the child is raised again in the parent with the same one
line; the child dies with the parent (PR_SET_PDEATHSIG) and is killed if the parent is
interrupted, and the stage's temporary directory is the parent's to clean up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mobq import errors, phaselog, progress, runtime
from mobq.errors import StageError
from mobq.pte import BUILDERS, export_program
from mobq.pte.lowering import ExportOptions, ExportResult

ENV_DISABLE = "MOBQ_EXPORT_IN_PROCESS"  # "1": lower in this process (debugging with pdb)


def export_in_child(
    exporter: str, model_dir: Path, pte: Path, options: ExportOptions, methods: dict[str, Any]
) -> tuple[ExportResult, float]:
    """(the exporter's result, the child's peak RSS in MB)."""
    if exporter not in BUILDERS:
        raise StageError(f"unknown exporter '{exporter}'; known: {', '.join(BUILDERS)}")
    if os.environ.get(ENV_DISABLE) == "1":
        from mobq import hostinfo

        return export_program(exporter, model_dir, pte, options, methods), hostinfo.peak_rss_mb()
    request = {
        "exporter": exporter,
        "model_dir": str(model_dir),
        "pte": str(pte),
        "options": asdict(options),
        "methods": methods,
        "rich": isinstance(phaselog.unwrapped(progress.reporter()), progress.RichReporter),
        "debug": runtime.debugging(),
        "parent_pid": os.getpid(),
    }
    with tempfile.TemporaryDirectory(prefix="mobq-export-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "mobq.pte.isolate",
            json.dumps(request),
            str(result_file),
        ]
        # stdout and stderr are inherited: the child's progress lines reach the user as they come.
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
        reply = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if proc.returncode == 0 and "result" in reply:
        found = reply["result"]
        result = ExportResult(
            Path(found["pte"]), found["bytes"], found["constant_methods"], found["lowering"]
        )
        return result, float(reply["peak_rss_mb"])
    raise _child_error(proc.returncode, reply)


def _child_error(returncode: int, reply: dict[str, Any]) -> BaseException:
    if returncode in (130, -signal.SIGINT, -signal.SIGTERM):
        return KeyboardInterrupt()
    if "error" in reply:
        name, message = reply["error"]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, errors.MobqError):
            return kind(message)
        return StageError(f"export failed: {name}: {message}")
    if returncode < 0:
        why = f"killed by signal {-returncode}"
        if -returncode == signal.SIGKILL:
            why += " (out of memory?)"
        return StageError(f"the export process was {why}")
    return StageError(f"the export process failed (exit {returncode}) without a result")


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies.

    A parent killed while this interpreter was still starting died before the request was
    made, so the child checks that its parent is still the one that started it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _child_main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    _die_with_parent(request.get("parent_pid"))
    # Ctrl-C reaches the whole process group: the parent reports it, the child just stops.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    result_file = Path(argv[1])
    if request.get("rich"):
        progress.set_reporter(progress.RichReporter())
    phaselog.install_from_env()
    runtime.set_debug(bool(request.get("debug")))
    if not runtime.debugging():
        runtime.quiet_libraries()
    from mobq import hostinfo

    try:
        result = export_program(
            request["exporter"],
            Path(request["model_dir"]),
            Path(request["pte"]),
            ExportOptions(**request["options"]),
            request["methods"],
        )
        reply: dict[str, Any] = {"result": result.to_dict(), "peak_rss_mb": hostinfo.peak_rss_mb()}
        code = 0
    except Exception as exc:  # reported to the parent, which raises it with the same line
        if runtime.debugging() and not isinstance(exc, errors.MobqError):
            import traceback

            traceback.print_exc()  # --debug: a bug's traceback, as in one process
        reply, code = {"error": [type(exc).__name__, str(exc)]}, 1
    result_file.write_text(json.dumps(reply))
    return code


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
