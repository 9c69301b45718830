"""Run a command as if this CPU had no AVX-512: the kernels an AVX2-only CPU (AMD Zen 3) runs.

XNNPACK (through cpuinfo), ATen and oneDNN pick their kernels at run time from CPUID. This
wrapper preloads `bench/isa/cpuid_mask.c`, which makes CPUID fault (Linux's ARCH_SET_CPUID,
"cpuid_fault" in /proc/cpuinfo) and answers it with the AVX-512 and AVX-VNNI bits cleared.
Code compiled for the build machine (`-march=native`) is not affected: give peers an AVX2
build (bench/README.md, "AVX2-only kernels on an AVX-512 host").

What it reproduces is the kernel choice, not the AVX2 machine: caches, memory bandwidth and
clocks stay this host's. Compare engines side by side in one run, as everywhere in bench/.

    python bench/avx2_only.py -- python bench/peer_llamacpp.py EXPORT \\
        --bin build/peer/llama-build-avx2/bin --json-out peer-avx2.json
    python bench/avx2_only.py --check      # what runtime dispatch sees, masked and not
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "bench" / "isa" / "cpuid_mask.c"
BUILD = REPO / "build" / "isa"
SEEN_BY_TORCH = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def build_library(build_dir: Path = BUILD) -> Path:
    """The preload library, compiled once per source version (cc from the system)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    library = build_dir / f"cpuid_mask-{digest}.so"
    if library.is_file():
        return library
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise SystemExit("avx2_only: no C compiler (cc) on PATH to build the CPUID mask")
    build_dir.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(".so.partial")
    command = [compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"avx2_only: building the CPUID mask failed: {proc.stderr.strip()}")
    partial.rename(library)
    return library


def masked_environment(library: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(library), env.get("LD_PRELOAD", "")]))
    env["MOBQ_VISIBLE_ISA"] = "avx2"  # bench scripts record it beside their figures
    return env


def capability_seen(env: dict[str, str] | None = None) -> str:
    """The instruction set ATen's runtime dispatch picks in a fresh process under `env`."""
    proc = subprocess.run(
        [sys.executable, "-c", SEEN_BY_TORCH], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"avx2_only: probe failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def prepare() -> dict[str, str]:
    """The environment to run under, after checking the mask does what it says here."""
    flags = cpu_flags()
    if "avx512f" not in flags:
        raise SystemExit("avx2_only: this CPU has no AVX-512 to hide; run the command as it is")
    if "cpuid_fault" not in flags:
        raise SystemExit("avx2_only: this CPU/kernel offers no CPUID faulting (cpuid_fault)")
    env = masked_environment(build_library())
    seen = capability_seen(env)
    if seen != "AVX2":
        raise SystemExit(f"avx2_only: under the mask runtime dispatch still sees {seen}")
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="print what dispatch sees and exit")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.check and not command:
        parser.error("give a command after --, or --check")
    if command and shutil.which(command[0]) is None:
        raise SystemExit(f"avx2_only: no such command: {command[0]}")
    env = prepare()
    if args.check:
        print(f"native: {capability_seen()}  masked: {capability_seen(env)}")
        return 0
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
