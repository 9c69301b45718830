"""`mobq doctor` reports each check with what to fix, and fails when something would break exports."""

from __future__ import annotations

import json
from collections import namedtuple
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq import doctor
from mobq.cli import cli


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_this_environment_passes() -> None:
    checks = by_name(doctor.run_checks(hub=False))
    for name in (
        "torch",
        "executorch",
        "torchao",
        "transformers",
        "executorch ops",
        "llm runner",
        "torch build",
    ):
        assert checks[name].status == "ok", checks[name]
    assert "hub" not in checks


def test_missing_package_and_version_drift_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def fake(name: str) -> str:
        if name == "torchao":
            raise metadata.PackageNotFoundError(name)
        return "9.9.9" if name == "transformers" else real(name)

    monkeypatch.setattr(doctor.metadata, "version", fake)
    checks = by_name(doctor.check_versions())
    assert checks["torchao"].status == "fail" and "make setup" in checks["torchao"].fix
    assert checks["transformers"].status == "warn" and "5.23.0" in checks["transformers"].detail


def test_low_disk_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: usage(10**12, 10**12, 10**9))
    check = doctor.check_disk(tmp_path)
    assert check.status == "fail" and "MOBQ_CACHE" in check.fix


def test_offline_hub_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert doctor.check_hub().status == "warn"


def test_cli_json_and_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["--quiet", "doctor", "--no-hub", "--json"])
    assert result.exit_code == 0, result.output
    names = {c["name"] for c in json.loads(result.output)}
    assert {"executorch ops", "disk", "memory", "cpu"} <= names
    monkeypatch.setattr(
        doctor, "check_runner", lambda: doctor.Check("llm runner", "fail", "broken", "reinstall")
    )
    result = CliRunner().invoke(cli, ["--quiet", "doctor", "--no-hub"])
    assert result.exit_code == 1 and "reinstall" in result.output


def test_cpu_check_says_what_an_avx2_only_host_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    avx2 = {"cpu": "AMD EPYC 7B13", "arch": "x86_64", "cores": 2, "simd": ["avx2"]}
    monkeypatch.setattr(doctor.hostinfo, "host", lambda: avx2)
    check = doctor.check_cpu()
    assert check.status == "ok" and "AVX-512 VNNI" in check.fix and "prefill" in check.fix
    vnni = {**avx2, "simd": ["avx2", "avx512f", "avx512_vnni"]}
    monkeypatch.setattr(doctor.hostinfo, "host", lambda: vnni)
    assert doctor.check_cpu().fix == ""
