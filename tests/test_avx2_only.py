"""bench/avx2_only.py: runtime dispatch sees AVX2 where the CPU has AVX-512, and only there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import benchscripts

avx2_only = benchscripts.load("avx2_only")
flags = avx2_only.cpu_flags() if sys.platform == "linux" else set()
needs_mask = pytest.mark.skipif(
    not {"avx512f", "cpuid_fault"} <= flags or shutil.which("cc") is None,
    reason="needs an AVX-512 CPU with CPUID faulting (Linux) and a C compiler",
)


@needs_mask
def test_mask_hides_avx512_from_runtime_dispatch(tmp_path: Path) -> None:
    env = avx2_only.masked_environment(avx2_only.build_library(tmp_path))
    assert avx2_only.capability_seen() != "AVX2"  # this host, unmasked
    assert avx2_only.capability_seen(env) == "AVX2"


@needs_mask
def test_a_real_fault_still_kills_the_process(tmp_path: Path) -> None:
    """The SIGSEGV handler emulates CPUID only; any other fault reaches the default action."""
    env = avx2_only.masked_environment(avx2_only.build_library(tmp_path))
    crash = "import ctypes; ctypes.string_at(0)"
    proc = subprocess.run([sys.executable, "-c", crash], env=env, capture_output=True)
    assert proc.returncode == -11


def test_refuses_a_cpu_without_avx512(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(avx2_only, "cpu_flags", lambda: {"avx2", "cpuid_fault"})
    with pytest.raises(SystemExit, match="no AVX-512 to hide"):
        avx2_only.prepare()


def test_a_missing_command_is_one_line_before_anything_runs() -> None:
    with pytest.raises(SystemExit, match="no such command: /no/such/tool"):
        avx2_only.main(["--", "/no/such/tool"])
