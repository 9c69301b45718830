"""`mobq device android push|bench|pull`: drive the sample app on a phone through adb.

push copies an export (the files its manifest lists, plus manifest.json) into the app's
external files folder, which adb may write and the app may read without permissions; bench
starts the app's benchmark activity with its options and waits for the result file; pull
copies the results back and validates them against the result contract.

The names below (package, activity, extras, folders) are the app's: android_app/core's
DeviceContract.kt holds the same strings, and a test keeps the two in step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mobq import fsutil, progress
from mobq.bundle import PROMPT_SET, PROMPTS_FILE, write_prompts
from mobq.errors import DeviceError, InputError, StageError
from mobq.manifest import MANIFEST, load_manifest
from mobq.results import load_results

PACKAGE = "dev.mobq.app"
BENCH_ACTIVITY = f"{PACKAGE}/.BenchmarkActivity"
APP_FILES = PurePosixPath(f"/sdcard/Android/data/{PACKAGE}/files")
MODELS_DIR = APP_FILES / "models"
RESULTS_DIR = APP_FILES / "results"
EXTRA_MODEL_DIR = "model_dir"
EXTRA_RUN_ID = "run_id"
EXTRA_WARMUP = "warmup"
EXTRA_REPETITIONS = "repetitions"
EXTRA_SUSTAINED_S = "sustained_s"
EXTRA_INTERVAL_S = "interval_s"
EXTRA_AUTORUN = "autorun"
ADB_TIMEOUT_S = 600


@dataclass
class PushResult:
    serial: str
    remote_dir: str
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class BenchRun:
    serial: str
    run_id: str
    remote_result: str
    command: list[str]
    finished: bool
    local_result: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Adb:
    """One device through the adb binary on PATH (or $ADB)."""

    def __init__(self, serial: str | None = None, runner: Callable[..., Any] = subprocess.run):
        binary = shutil.which(os.environ.get("ADB", "adb"))
        if binary is None:
            raise DeviceError(
                "adb not found on PATH: install Android platform-tools (or set $ADB) and connect a phone with USB debugging on"
            )
        self.binary = binary
        self._run = runner
        self.serial = serial or self._only_device()

    def _call(
        self, args: list[str], *, device: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess:
        command = [self.binary, *(["-s", self.serial] if device else []), *args]
        try:
            proc = self._run(command, capture_output=True, text=True, timeout=ADB_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"adb {' '.join(args)} timed out after {ADB_TIMEOUT_S}s") from exc
        if check and proc.returncode != 0:
            first = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise DeviceError(
                f"adb {' '.join(args)} failed: {first[0] if first else f'exit {proc.returncode}'}"
            )
        return proc

    def devices(self) -> list[str]:
        out = self._call(["devices"], device=False).stdout
        return [
            parts[0]
            for line in out.splitlines()[1:]
            if len(parts := line.split()) >= 2 and parts[1] == "device"
        ]

    def _only_device(self) -> str:
        serials = self.devices()
        if not serials:
            raise DeviceError(
                "no Android device connected (adb devices lists none ready): connect one with USB debugging on and accept the prompt"
            )
        if len(serials) > 1:
            raise DeviceError(
                f"{len(serials)} devices connected ({', '.join(serials)}); choose one with --serial"
            )
        return serials[0]

    def shell(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._call(["shell", *args], check=check)

    def push(self, local: Path, remote: PurePosixPath) -> None:
        self._call(["push", str(local), str(remote)])

    def pull(self, remote: PurePosixPath, local: Path) -> None:
        self._call(["pull", str(remote), str(local)])

    def exists(self, remote: PurePosixPath) -> bool:
        return self.shell("ls", str(remote), check=False).returncode == 0


def remote_model_dir(export_dir: Path) -> PurePosixPath:
    return MODELS_DIR / Path(export_dir).resolve().name


def push(export_dir: Path, *, serial: str | None = None, adb: Adb | None = None) -> PushResult:
    """The manifest's files and manifest.json to the app's models folder (sizes re-checked first)."""
    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    sources = [(e.role, manifest.checked_path(export_dir, e.role), e.path) for e in manifest.files]
    sources.append(("manifest", export_dir / MANIFEST, MANIFEST))
    adb = adb or Adb(serial)
    remote = remote_model_dir(export_dir)
    adb.shell("mkdir", "-p", str(remote))
    pushed = []
    with tempfile.TemporaryDirectory(prefix="mobq-push-") as scratch:
        # The benchmark prompts with their token counts, as `mobq bundle` writes them: the app
        # compares them with what the phone's tokenizer counts.
        if PROMPT_SET.is_file():
            prompts = Path(scratch) / PROMPTS_FILE
            write_prompts(manifest, export_dir, prompts, remote / PROMPTS_FILE)
            sources.append(("prompts", prompts, PROMPTS_FILE))
        with progress.task(f"adb push → {remote}", total=len(sources)) as advance:
            for role, local, name in sources:
                adb.push(local, remote / name)
                pushed.append(
                    {
                        "role": role,
                        "local": str(local),
                        "remote": str(remote / name),
                        "bytes": local.stat().st_size,
                    }
                )
                advance(1)
    return PushResult(adb.serial, str(remote), pushed)


def bench(
    export_dir: Path,
    *,
    warmup: int = 1,
    repetitions: int = 3,
    sustained_s: float = 0,
    interval_s: float = 5,
    wait: bool = True,
    timeout_s: float | None = None,
    out: Path | None = None,
    serial: str | None = None,
    adb: Adb | None = None,
    poll_s: float = 2.0,
) -> BenchRun:
    """Start the benchmark activity on a pushed export; with wait, poll for its result file."""
    if warmup < 0 or repetitions < 1:
        raise InputError(f"need warmup >= 0 and repetitions >= 1, got {warmup} and {repetitions}")
    if sustained_s < 0 or interval_s <= 0:
        raise InputError("--sustained-minutes must be >= 0 and --interval > 0")
    adb = adb or Adb(serial)
    remote = remote_model_dir(export_dir)
    if not adb.exists(remote / MANIFEST):
        raise InputError(
            f"{remote}/{MANIFEST} is not on the phone; run `mobq device android push {export_dir}` first"
        )
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    command = [
        "am", "start", "-W", "-n", BENCH_ACTIVITY,
        "--es", EXTRA_MODEL_DIR, str(remote),
        "--es", EXTRA_RUN_ID, run_id,
        "--ei", EXTRA_WARMUP, str(warmup),
        "--ei", EXTRA_REPETITIONS, str(repetitions),
        "--ei", EXTRA_SUSTAINED_S, str(int(sustained_s)),
        "--ei", EXTRA_INTERVAL_S, str(int(interval_s)),
        "--ez", EXTRA_AUTORUN, "true",
    ]  # fmt: skip
    adb.shell(*command)
    remote_result = RESULTS_DIR / f"{run_id}.json"
    run = BenchRun(adb.serial, run_id, str(remote_result), command, finished=False)
    if not wait:
        return run
    # Budget: a few minutes for load + repetitions, plus the sustained phase.
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else 600 + sustained_s * 1.2)
    with progress.task(f"benchmarking on {adb.serial} (run {run_id})") as tick:
        while not adb.exists(remote_result):
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"no result at {remote_result} before the timeout; is the app open on the phone? `adb logcat -s mobq` shows why"
                )
            time.sleep(poll_s)
            tick(1)
    run.finished = True
    if out is not None:
        local = Path(out) / f"{run_id}.json"
        _pull_checked(adb, remote_result, local)
        run.local_result = str(local)
    return run


def pull(out: Path, *, serial: str | None = None, adb: Adb | None = None) -> list[Path]:
    """Every result file the app wrote, into OUT, each validated against the result contract."""
    adb = adb or Adb(serial)
    listing = adb.shell("ls", str(RESULTS_DIR), check=False)
    names = (
        sorted(n for n in listing.stdout.split() if n.endswith(".json"))
        if listing.returncode == 0
        else []
    )
    if not names:
        raise InputError(
            f"no result files in {RESULTS_DIR} on {adb.serial}; run `mobq device android bench` first"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pulled = []
    for name in names:
        local = out / name
        _pull_checked(adb, RESULTS_DIR / name, local)
        pulled.append(local)
    return pulled


def _pull_checked(adb: Adb, remote: PurePosixPath, local: Path) -> None:
    """Pull to a temporary name, validate, then rename: a bad file never lands as a result."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_path(local) as tmp:
        fsutil.remove(tmp)  # adb pull refuses nothing, but it must create the file itself
        adb.pull(remote, tmp)
        if not tmp.is_file():
            raise StageError(f"adb pull {remote} wrote nothing")
        try:
            load_results(tmp)
        except InputError as exc:  # name the phone's file, not the temporary
            raise InputError(str(exc).replace(str(tmp), f"{adb.serial}:{remote}")) from exc
