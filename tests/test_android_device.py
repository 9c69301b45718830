"""mobq device android push|bench|pull against a fake `adb` on PATH (no phone needed)."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq import android_device
from mobq.android_device import DeviceError, bench, pull, push, remote_model_dir
from mobq.cli import cli
from mobq.errors import InputError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "schema" / "examples"
CONTRACT_KT = REPO / "android_app/core/src/main/kotlin/dev/mobq/core/DeviceContract.kt"

# A tiny adb: the phone's storage is a folder ($FAKE_ADB_ROOT), every call is logged, and
# `am start` "runs" the benchmark at once by writing $FAKE_ADB_RESULT as the run's result.
FAKE_ADB = r"""
import json, os, shutil, sys
from pathlib import Path
root = Path(os.environ["FAKE_ADB_ROOT"])
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args == ["devices"]:
    print("List of devices attached")
    for serial in os.environ.get("FAKE_ADB_DEVICES", "").split():
        print(f"{serial}\tdevice")
    sys.exit(0)
assert args[0] == "-s", args
args = args[2:]
on_phone = lambda remote: root / remote.lstrip("/")
if args[0] == "push":
    on_phone(args[2]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args[1], on_phone(args[2]))
elif args[0] == "pull":
    shutil.copyfile(on_phone(args[1]), args[2])
elif args[:2] == ["shell", "mkdir"]:
    on_phone(args[-1]).mkdir(parents=True, exist_ok=True)
elif args[:2] == ["shell", "ls"]:
    target = on_phone(args[2])
    if not target.exists():
        print(f"ls: {args[2]}: No such file or directory", file=sys.stderr)
        sys.exit(1)
    print("\n".join(sorted(p.name for p in target.iterdir())) if target.is_dir() else args[2])
elif args[:3] == ["shell", "am", "start"]:
    run_id = args[args.index("run_id") + 1]
    result = os.environ.get("FAKE_ADB_RESULT")
    if result:
        out = root / "sdcard/Android/data/dev.mobq.app/files/results" / f"{run_id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result, out)
    print("Status: ok")
else:
    print(f"fake adb: unsupported {args}", file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture()
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\n{FAKE_ADB}")
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    root, log = tmp_path / "phone", tmp_path / "adb.log"
    root.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "PHONE123")
    return {"root": root, "log": log}


def calls(phone: dict[str, Path]) -> list[list[str]]:
    return [json.loads(line) for line in phone["log"].read_text().splitlines()]


def on_phone(phone: dict[str, Path], remote: str) -> Path:
    return phone["root"] / remote.lstrip("/")


def test_no_adb_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ADB", raising=False)
    with pytest.raises(DeviceError, match="adb not found on PATH"):
        android_device.Adb()
    out = CliRunner().invoke(cli, ["-q", "device", "android", "pull", "--out", str(tmp_path / "r")])
    assert out.exit_code == DeviceError.exit_code
    assert out.output.count("\n") == 1 and out.output.startswith("Error: adb not found")


def test_no_device_and_several_devices(
    phone, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    with pytest.raises(DeviceError, match="no Android device connected"):
        android_device.Adb()
    monkeypatch.setenv("FAKE_ADB_DEVICES", "A B")
    with pytest.raises(
        DeviceError, match=r"2 devices connected \(A, B\); choose one with --serial"
    ):
        android_device.Adb()
    assert android_device.Adb(serial="B").serial == "B"


def test_push_sends_every_manifest_file_into_the_apps_models_folder(
    phone, export_tied_8da4w
) -> None:
    export_dir, manifest = export_tied_8da4w
    result = push(export_dir)
    remote = remote_model_dir(export_dir)
    assert str(remote).startswith("/sdcard/Android/data/dev.mobq.app/files/models/")
    assert result.serial == "PHONE123"
    for name in [e.path for e in manifest.files] + ["manifest.json"]:
        assert on_phone(phone, f"{remote}/{name}").read_bytes() == (export_dir / name).read_bytes()
    # The prompt set with this export's token counts, for the app's tokenizer cross-check.
    prompts = json.loads(on_phone(phone, f"{remote}/prompts.json").read_text())
    assert all(p["prompt_tokens"] > 0 for p in prompts["prompts"])
    assert {f["role"] for f in result.files} == {e.role for e in manifest.files} | {
        "manifest",
        "prompts",
    }
    assert all(c[:2] == ["-s", "PHONE123"] for c in calls(phone)[1:])


def test_bench_starts_the_activity_with_options_and_fetches_a_valid_result(
    phone, export_tied_8da4w, tmp_path, monkeypatch
) -> None:
    export_dir, _ = export_tied_8da4w
    with pytest.raises(InputError, match="push"):
        bench(export_dir, wait=False)
    push(export_dir)
    monkeypatch.setenv("FAKE_ADB_RESULT", str(EXAMPLES / "bench-result-android-sustained.json"))
    run = bench(
        export_dir,
        warmup=2,
        repetitions=5,
        sustained_s=300,
        interval_s=10,
        out=tmp_path / "results",
        poll_s=0.01,
    )
    start = next(c for c in calls(phone) if c[2:5] == ["shell", "am", "start"])
    assert start[start.index("-n") + 1] == "dev.mobq.app/.BenchmarkActivity"
    extras = {
        start[i + 1]: start[i + 2] for i, a in enumerate(start) if a in ("--es", "--ei", "--ez")
    }
    assert extras == {
        "model_dir": str(remote_model_dir(export_dir)),
        "run_id": run.run_id,
        "warmup": "2",
        "repetitions": "5",
        "sustained_s": "300",
        "interval_s": "10",
        "autorun": "true",
    }
    assert (
        run.finished
        and Path(run.local_result).read_text()
        == (EXAMPLES / "bench-result-android-sustained.json").read_text()
    )


def test_bench_times_out_with_a_hint(phone, export_tied_8da4w) -> None:
    export_dir, _ = export_tied_8da4w
    push(export_dir)
    with pytest.raises(DeviceError, match=r"no result at .* before the timeout"):
        bench(export_dir, timeout_s=0.05, poll_s=0.01)


def test_pull_validates_every_result(phone, tmp_path: Path) -> None:
    results = on_phone(phone, str(android_device.RESULTS_DIR))
    results.mkdir(parents=True)
    with pytest.raises(InputError, match="no result files"):
        pull(tmp_path / "none")
    (results / "a.json").write_text((EXAMPLES / "bench-result-android-sustained.json").read_text())
    assert [p.name for p in pull(tmp_path / "ok")] == ["a.json"]
    broken = json.loads((EXAMPLES / "bench-result-android-sustained.json").read_text())
    broken["ttft_ms"] = -1
    (results / "b.json").write_text(json.dumps(broken))
    with pytest.raises(InputError, match=r"PHONE123:/sdcard/.*/results/b\.json: field 'ttft_ms'"):
        pull(tmp_path / "bad")
    assert not (tmp_path / "bad" / "b.json").exists()


def test_cli_push_and_pull(phone, export_tied_8da4w, tmp_path: Path) -> None:
    export_dir, _ = export_tied_8da4w
    runner = CliRunner()
    out = runner.invoke(cli, ["-q", "device", "android", "push", str(export_dir), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["serial"] == "PHONE123"
    out = runner.invoke(cli, ["-q", "device", "android", "pull", "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and out.output.startswith("Error: no result files")


def test_names_match_the_apps_device_contract() -> None:
    """The app (Kotlin core) and this module must use the same package, activity and extras."""
    kotlin = dict(re.findall(r'const val (\w+) = "([^"]*)"', CONTRACT_KT.read_text()))
    assert kotlin["PACKAGE"] == android_device.PACKAGE
    assert f"{kotlin['PACKAGE']}/{kotlin['BENCH_ACTIVITY']}" == android_device.BENCH_ACTIVITY
    assert android_device.MODELS_DIR.name == kotlin["MODELS_DIR"]
    assert android_device.RESULTS_DIR.name == kotlin["RESULTS_DIR"]
    assert str(android_device.APP_FILES) == f"/sdcard/Android/data/{kotlin['PACKAGE']}/files"
    for name, value in kotlin.items():
        if name.startswith("EXTRA_"):
            assert getattr(android_device, name) == value, name
