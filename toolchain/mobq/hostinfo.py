"""What machine and software produced a figure: recorded beside every result."""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from typing import Any

PACKAGES = (
    "mobq",
    "torch",
    "executorch",
    "torchao",
    "transformers",
    "tokenizers",
    "pytorch-tokenizers",
)


@cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "flags", "Hardware", "CPU part") and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    return info


@cache
def host() -> dict[str, Any]:
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    simd = [
        f
        for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "neon", "asimd")
        if f in flags
    ]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores": cores,
        "simd": simd,
        "memory_gb": round(_total_memory() / 1e9, 1),
        "os": f"{platform.system()} {platform.release()}",
    }


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: KiB in ru_maxrss)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if platform.system() == "Linux" else peak / 1e6, 1)


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process (Linux: clear_refs 5 resets VmHWM).

    Lets each pipeline stage report its own peak rather than the largest so far.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc keeps them otherwise)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
