"""`mobq doctor`: is this environment able to export and run? Each check says what to fix."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from mobq import cache, hostinfo

Status = Literal["ok", "warn", "fail"]

# The versions mobq was verified with (docs/decisions.md); others may work but are untested.
PINNED = {"torch": "2.13.0", "executorch": "1.5.1", "torchao": "0.18.0", "transformers": "5.23.0"}
MIN_FREE_DISK_GB = 5.0
MIN_MEMORY_GB = 4.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_versions() -> list[Check]:
    checks = []
    for package, wanted in PINNED.items():
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            checks.append(
                Check(
                    package, "fail", "not installed", f"run `make setup` (pins {package}=={wanted})"
                )
            )
            continue
        base = found.split("+")[0]
        if base == wanted:
            checks.append(Check(package, "ok", found))
        else:
            checks.append(
                Check(
                    package,
                    "warn",
                    f"{found}, mobq is verified with {wanted}",
                    f"run `make setup` to install {package}=={wanted}",
                )
            )
    return checks


def check_torch_build() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch build", "fail", str(exc), "run `make setup`")
    cuda = getattr(torch.version, "cuda", None)
    if cuda:
        return Check(
            "torch build",
            "warn",
            f"CUDA {cuda} build (several GB)",
            "the CPU wheel is enough for phone exports",
        )
    return Check("torch build", "ok", "CPU build")


def check_executorch_ops() -> Check:
    """The custom SDPA and quantized kernels every mobq .pte needs must register."""
    try:
        from mobq.runtime import load_ops

        load_ops()
        import torch

        torch.ops.llama.custom_sdpa.default  # noqa: B018 - raises if the op is missing
    except Exception as exc:  # any failure here means programs will not load
        return Check(
            "executorch ops",
            "fail",
            f"custom/quantized ops do not load: {' '.join(str(exc).split())[:160]}",
            "executorch's compiled ops must match torch: reinstall with `make setup`",
        )
    return Check("executorch ops", "ok", "llama::custom_sdpa and quantized kernels load")


def check_runner() -> Check:
    from mobq.runtime import quiet_native_logs

    try:
        with quiet_native_logs():  # its tokenizer library announces itself on import
            from executorch.extension.llm.runner import TextLLMRunner  # noqa: F401
    except Exception as exc:
        return Check(
            "llm runner",
            "fail",
            f"TextLLMRunner unavailable: {exc}",
            "reinstall executorch with `make setup`",
        )
    return Check("llm runner", "ok", "TextLLMRunner importable")


def check_disk(directory: Path) -> Check:
    probe = Path(directory)
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    detail = f"{free_gb:.1f} GB free at {probe}"
    if free_gb < MIN_FREE_DISK_GB:
        return Check(
            "disk",
            "fail",
            detail,
            f"free space or point MOBQ_CACHE elsewhere (a 4B export needs ~{3 * 8} GB)",
        )
    if free_gb < 30:
        return Check(
            "disk",
            "warn",
            detail,
            "4B-8B exports need 20-50 GB of cache; set MOBQ_CACHE to a larger disk",
        )
    return Check("disk", "ok", detail)


def check_memory() -> Check:
    total = hostinfo.host()["memory_gb"]
    available = _available_memory_gb()
    detail = f"{total:.1f} GB total, {available:.1f} GB available"
    if available and available < MIN_MEMORY_GB:
        return Check(
            "memory",
            "fail",
            detail,
            "close other programs: exporting even small models needs ~4 GB",
        )
    if total < 16:
        return Check("memory", "warn", detail, "exports of 4B+ models need 10-18 GB")
    return Check("memory", "ok", detail)


def _available_memory_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return 0.0


def check_hub(timeout: float = 3.0) -> Check:
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return Check(
            "hub", "warn", "HF_HUB_OFFLINE is set: only cached models and local directories work"
        )
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(f"{endpoint}/api/models?limit=1", timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "hub",
            "warn",
            f"{endpoint} unreachable ({reason})",
            "downloads will fail: use cached models, local directories or --random-weights",
        )
    return Check("hub", "ok", f"{endpoint} reachable")


def check_cpu() -> Check:
    info = hostinfo.host()
    detail = (
        f"{info['cpu']}, {info['cores']} cores, SIMD: {', '.join(info['simd']) or 'none found'}"
    )
    if info["arch"] in ("x86_64", "AMD64") and "avx512_vnni" not in info["simd"]:
        # Measured with bench/avx2_only.py: XNNPACK's AVX2 int4 GEMMs are ~5x slower than its
        # AVX-512 VNNI ones; decode is memory-bound and barely moves.
        return Check(
            "cpu",
            "ok",
            detail,
            "no AVX-512 VNNI: host prefill of 8da4w programs runs ~3x slower than on VNNI CPUs "
            "(XNNPACK's AVX2 int4 kernels); decode and phones are unaffected",
        )
    return Check("cpu", "ok", detail)


def run_checks(*, hub: bool = True) -> list[Check]:
    steps: list[Callable[[], Check | list[Check]]] = [
        check_versions,
        check_torch_build,
        check_executorch_ops,
        check_runner,
        lambda: check_disk(cache.cache_root()),
        check_memory,
        check_cpu,
    ]
    if hub:
        steps.append(check_hub)
    checks: list[Check] = []
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return checks
