"""`mobq bench`: speed and memory of an export on this host, through ExecuTorch's stock runner.

Each configuration (prompt length x generated tokens x threads) runs in a fresh Python process
by default, so its peak resident memory is that configuration's own (a process's peak never
goes down). Inside the worker, ExecuTorch's TextLLMRunner -- the C++ runner the apps link --
generates greedily and reports its own timings through `stats_callback`.

The decode ceiling: a decoded token reads every weight once plus the KV cache up to its
position, so memory bandwidth / those bytes bounds decode speed on this machine.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobq import cache as mobq_cache
from mobq import fsutil, hostinfo, progress
from mobq import stats as runner_stats
from mobq.errors import InputError, StageError
from mobq.manifest import Manifest, load_manifest
from mobq.results import BenchResult, Ceiling, Spread
from mobq.runtime import runner_api

CORPUS = Path(__file__).resolve().parent / "data" / "corpus.txt"
KV_BYTES_PER_VALUE = 4  # mobq exports keep the KV cache in fp32
WORKER_TIMEOUT_S = 3600


@dataclass(frozen=True)
class BenchConfig:
    prompt_tokens: int
    gen_tokens: int
    threads: int
    warmup: int = 1
    reps: int = 3

    def check(self, manifest: Manifest) -> None:
        ctx = manifest.runtime.max_context_len
        if self.prompt_tokens < 1 or self.gen_tokens < 1:
            raise InputError(
                f"prompt and generation lengths must be >= 1, got -p {self.prompt_tokens} -n {self.gen_tokens}"
            )
        if self.prompt_tokens + self.gen_tokens > ctx:
            raise InputError(
                f"-p {self.prompt_tokens} + -n {self.gen_tokens} exceeds the export's context window "
                f"of {ctx} tokens; use shorter lengths or re-export with a larger --ctx"
            )
        if self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")
        if self.reps < 1 or self.warmup < 0:
            raise InputError(
                f"--reps must be >= 1 and --warmup >= 0, got {self.reps} / {self.warmup}"
            )


def parse_lengths(text: str, option: str) -> list[int]:
    """`128,512` -> [128, 512], as llama-bench's -p/-n take them."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InputError(
            f"{option} takes comma-separated token counts like 128,512, got {text!r}"
        ) from exc
    if not values or any(v < 1 for v in values):
        raise InputError(f"{option} takes positive token counts, got {text!r}")
    return values


def plan(
    manifest: Manifest,
    prompt_lengths: list[int],
    gen_lengths: list[int],
    threads: list[int],
    *,
    warmup: int,
    reps: int,
) -> list[BenchConfig]:
    configs = [
        BenchConfig(p, n, t, warmup, reps)
        for t in threads
        for p in prompt_lengths
        for n in gen_lengths
    ]
    for config in configs:
        config.check(manifest)
    return configs


# ------------------------------------------------------------------ prompt of an exact length


def prompt_of_length(tokenizer: Any, tokens: int, corpus: Path = CORPUS) -> str:
    """Text from the bundled corpus that tokenizes to exactly `tokens` tokens."""
    text = corpus.read_text(encoding="utf-8")
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    while len(ids) < tokens + 8:
        text += "\n" + text
        ids = tokenizer.encode(text, add_special_tokens=False).ids
    # Decoding a prefix and re-encoding can merge differently at the cut: adjust until exact.
    take = tokens
    for _ in range(16):
        candidate = tokenizer.decode(ids[:take], skip_special_tokens=False)
        got = len(tokenizer.encode(candidate, add_special_tokens=False).ids)
        if got == tokens:
            return candidate
        take += tokens - got
    return candidate


# ------------------------------------------------------------------ the worker (one process)


def _set_threads(threads: int) -> int:
    """ExecuTorch's threadpool is shared by the runner and the pybindings; size it once."""
    from executorch.extension.pybindings import portable_lib

    from mobq.runtime import quiet_native_logs

    with quiet_native_logs():  # a first threadpool (re)build probes the CPU and logs it
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        return int(portable_lib._threadpool_get_thread_count())


def _generate_once(runner: Any, prompt: Any, generation: Any) -> dict[str, Any]:
    from mobq.runtime import capture_runner_output

    stats: dict[str, Any] = {}
    runner.reset()
    with capture_runner_output(None):  # the runner prints tokens and a stats line to stdout
        runner.generate(
            prompt,
            generation,
            stats_callback=lambda s: stats.update(json.loads(s.to_json_string())),
        )
    return stats


def measure(export_dir: Path, config: BenchConfig) -> dict[str, Any]:
    """Load the export into the stock runner and time warm-up + repetitions (in this process)."""
    from mobq.metadata import load_hf_tokenizer
    from mobq.runtime import multimodal_runner, text_runner

    manifest = load_manifest(export_dir)
    baseline_rss = hostinfo.peak_rss_mb()
    pte = manifest.checked_path(export_dir, "program")
    tokenizer_json = manifest.checked_path(export_dir, "tokenizer")
    threads = _set_threads(config.threads)
    prompt = prompt_of_length(load_hf_tokenizer(tokenizer_json.parent), config.prompt_tokens)
    runners = runner_api()
    # torch, the pybindings and the tokenizer are the host's Python, not what an app pays for.
    imports_rss = hostinfo.peak_rss_mb()
    image_ms: list[float] = []
    if manifest.image is not None:  # a VLM: the prompt is text + one picture + nothing after
        image_ms = image_encode_ms(pte, manifest, config.warmup, config.reps)
        prompt = _multimodal_prompt(manifest, prompt, tokenizer_json)
    started = time.perf_counter()
    make_runner = multimodal_runner if manifest.image is not None else text_runner
    runner = make_runner(pte, tokenizer_json)
    construct_ms = (time.perf_counter() - started) * 1000
    generation = runners.GenerationConfig(
        max_new_tokens=config.gen_tokens, temperature=0.0, echo=False, num_bos=0
    )
    runs: list[dict[str, Any]] = []
    for index in range(config.warmup + config.reps):
        stats = _generate_once(runner, prompt, generation)
        if not stats:
            raise StageError(f"the runner returned no statistics for {pte}")
        if index == 0:
            load_ms = construct_ms + stats["model_load_end_ms"] - stats["model_load_start_ms"]
        if index >= config.warmup:
            runs.append(asdict(runner_stats.figures(stats)))
    return {
        "config": asdict(config),
        "threads": threads,
        "load_ms": load_ms,
        "runs": runs,
        "peak_rss_mb": hostinfo.peak_rss_mb(),
        "locked_mb": locked_mb(),
        "baseline_rss_mb": baseline_rss,
        "imports_rss_mb": imports_rss,
        "image_encode_ms": image_ms,
        "dispatch_isa": dispatch_isa(),
    }


def dispatch_isa() -> str:
    """The instruction set runtime dispatch chose in this process (ATen's reading of CPUID,
    which XNNPACK's own matches): AVX2-only CPUs prefill ~3x slower with XNNPACK's int4 kernels
    than AVX-512 VNNI ones (docs/performance.md), so a figure is only comparable with this."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def image_encode_ms(pte: Path, manifest: Manifest, warmup: int, reps: int) -> list[float]:
    """Wall time of the program's `vision_encoder` on one picture, per repetition."""
    from mobq.runtime import load_program, quiet_native_logs
    from mobq.vision import ImageSpec, preprocess, synthetic_image

    pixels = preprocess(synthetic_image(), ImageSpec(**manifest.image))  # type: ignore[arg-type]
    with quiet_native_logs():
        method = load_program(pte).load_method("vision_encoder")
        times = []
        for _ in range(warmup + reps):
            started = time.perf_counter()
            method.execute([pixels])
            times.append((time.perf_counter() - started) * 1000)
    return times[warmup:]


def _multimodal_prompt(manifest: Manifest, text: str, tokenizer_json: Path) -> list[Any]:
    """The text, <start_of_image> where the tokenizer spells it (one more token), the picture."""
    from mobq.vision import ImageSpec, preprocess, spelled_token, synthetic_image

    runners = runner_api()
    spec = ImageSpec(**manifest.image)  # type: ignore[arg-type]
    pixels = preprocess(synthetic_image(), spec)
    text += spelled_token(tokenizer_json, spec.boi_token_id) or ""
    return [runners.make_text_input(text), runners.make_image_input(pixels[0])]


WORKER_ERROR = "MOBQ_WORKER_ERROR "
APP_MEMLOCK_BYTES = 64 * 1024  # RLIMIT_MEMLOCK of an unprivileged process (Linux < 5.16)
CAP_IPC_LOCK = 14  # linux/capability.h
_CAPABILITY_VERSION_3 = 0x20080522


def deny_mlock() -> str:
    """Make this process unable to mlock, as an app is; returns what was done.

    ExecuTorch's Module maps the .pte and mlocks it (MmapUseMlockIgnoreErrors). As root, or
    with CAP_IPC_LOCK, that pins the program's constant segment (the int8 embedding table,
    370 MiB at Qwen3-4B) in RSS. An app has neither: its mlock fails, ExecuTorch ignores that,
    and the table is paged in as tokens touch its rows. The worker measures the app's case.
    """
    import resource

    if platform.system() != "Linux":
        return "not changed (not Linux)"
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (APP_MEMLOCK_BYTES, APP_MEMLOCK_BYTES))
    if not _drop_capability(CAP_IPC_LOCK):
        return "RLIMIT_MEMLOCK 64 KiB; CAP_IPC_LOCK could not be dropped"
    return "denied as in an app (RLIMIT_MEMLOCK 64 KiB, no CAP_IPC_LOCK)"


def _drop_capability(bit: int) -> bool:
    """Clear one capability from this process's effective and permitted sets (capset(2))."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(_CAPABILITY_VERSION_3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return False
    word, mask = divmod(bit, 32)
    data[word].effective &= ~(1 << mask)
    data[word].permitted &= ~(1 << mask)
    return libc.capset(ctypes.byref(header), data) == 0


def locked_mb() -> float | None:
    """Memory this process has locked (mlock), from /proc/self/status; None off Linux."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmLck:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _worker_main(argv: list[str]) -> None:
    from mobq.errors import MobqError

    export_dir, config_json, out = argv
    try:
        mlock = deny_mlock()
        result = measure(Path(export_dir), BenchConfig(**json.loads(config_json)))
        result["mlock"] = mlock
    except MobqError as exc:  # the parent re-raises it: the user sees the same one line
        print(WORKER_ERROR + json.dumps([type(exc).__name__, str(exc)]), file=sys.stderr)
        sys.exit(exc.exit_code)
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def _worker_error(stderr: str) -> Exception | None:
    from mobq import errors

    for line in reversed(stderr.splitlines()):
        if line.startswith(WORKER_ERROR):
            name, message = json.loads(line[len(WORKER_ERROR) :])
            kind = getattr(errors, name, None)
            is_mobq = isinstance(kind, type) and issubclass(kind, errors.MobqError)
            return (kind if is_mobq else errors.StageError)(message)
    return None


def measure_in_subprocess(export_dir: Path, config: BenchConfig) -> dict[str, Any]:
    """One configuration in a fresh interpreter: its peak RSS is this configuration's alone."""
    with tempfile.TemporaryDirectory(prefix="mobq-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "mobq.benchmark",
            str(export_dir),
            json.dumps(asdict(config)),
            str(out),
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        if proc.returncode != 0 or not out.is_file():
            known = _worker_error(proc.stderr or "")
            if known is not None:
                raise known
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])[:400]
            raise StageError(
                f"the benchmark worker failed (exit {proc.returncode}) for -p {config.prompt_tokens} "
                f"-n {config.gen_tokens}: {tail or 'no output'}"
            )
        return json.loads(out.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the decode ceiling


def _bandwidth_path(threads: int) -> Path:
    info = hostinfo.host()
    key = mobq_cache.stage_key("bandwidth", cpu=info["cpu"], cores=info["cores"], threads=threads)
    return mobq_cache.cache_root() / "hostinfo" / f"bandwidth-{key[:16]}.json"


def memory_bandwidth_gb_s(threads: int) -> tuple[float, str]:
    """Read bandwidth of this machine with `threads` threads: the best seen, cached per CPU and
    thread count (measured on first use; raised by `remember_bandwidth`)."""
    path = _bandwidth_path(threads)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return float(data["gb_s"]), str(data["method"])
    gb_s, method = _measure_bandwidth(threads)
    fsutil.write_json(path, {"gb_s": gb_s, "method": method, "cpu": hostinfo.host()["cpu"]})
    return gb_s, method


def remember_bandwidth(threads: int, gb_s: float) -> None:
    """Keep the highest bandwidth this machine has shown. A first measurement taken while other
    jobs ran understates the machine for good (one cached 11.7 GB/s here put decode at 195 %
    of its "limit"); every benchmark run measures again and may only raise it."""
    current, _ = memory_bandwidth_gb_s(threads)
    if gb_s > current:
        fsutil.write_json(
            _bandwidth_path(threads),
            {
                "gb_s": gb_s,
                "method": f"torch sum and dot far beyond the caches, {threads} threads: "
                "the best seen by mobq bench on this machine",
                "cpu": hostinfo.host()["cpu"],
            },
        )


def _measure_bandwidth(threads: int, size_mib: int = 512, repeats: int = 5) -> tuple[float, str]:
    """Stream-read a buffer far larger than the caches, best of N.

    Two read-bound kernels, the faster counts: ATen's sum and a dot product of the buffer with
    itself (each element loaded once). On the development host the dot reads ~5 % faster than
    the sum, about what XNNPACK's int4 GEMV streams (bench/gemv_bound.py); with the sum alone
    decode measured above 100 % of its ceiling.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = torch.ones(size_mib * 2**20 // 4, dtype=torch.float32)
        data.sum()  # fault the pages in before timing
        best = float("inf")
        for _ in range(repeats):
            for read in (data.sum, lambda: torch.dot(data, data)):
                started = time.perf_counter()
                read()
                best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    gb_s = data.numel() * 4 / best / 1e9
    method = f"torch sum and dot over {size_mib} MiB fp32, {threads} threads, best of {repeats}"
    return round(gb_s, 2), method


DTYPE_BYTES = {"int4": 0.5, "int8": 1, "bfloat16": 2, "float16": 2, "float32": 4, "fp32": 4}


def embedding_bytes(manifest: Manifest) -> int:
    """Bytes of the token-embedding table: it is in the .pte but a token reads one row of it."""
    params = manifest.model.params
    dtype = manifest.export.dtype
    config = (manifest.quantization or {}).get("torchao_config") or {}
    fqns = config.get("quant_type", {}).get("default", {}).get("_data", {}).get("fqn_to_config", {})
    embedding = fqns.get("model.embed_tokens", {}).get("_data", {})
    dtype = embedding.get("weight_dtype", {}).get("_data", dtype)
    return int(params["vocab_size"] * params["dim"] * DTYPE_BYTES.get(dtype, 4))


def bytes_per_token(manifest: Manifest, export_dir: Path, position: int) -> int:
    """Weights a decode step reads (the .pte less the embedding table) + the KV cache so far."""
    params = manifest.model.params
    weights = manifest.checked_path(export_dir, "program").stat().st_size - embedding_bytes(
        manifest
    )
    kv = 2 * params["n_layers"] * params["n_kv_heads"] * params["head_dim"] * KV_BYTES_PER_VALUE
    return int(max(weights, 1) + kv * position)


def ceiling(
    manifest: Manifest, export_dir: Path, config: BenchConfig, decode_tps: float
) -> Ceiling:
    gb_s, method = memory_bandwidth_gb_s(config.threads)
    # Decoded tokens sit between position p and p + n: take the middle.
    per_token = bytes_per_token(manifest, export_dir, config.prompt_tokens + config.gen_tokens // 2)
    limit = gb_s * 1e9 / per_token
    return Ceiling(
        memory_bandwidth_gb_s=gb_s,
        bytes_per_token=per_token,
        decode_tokens_per_sec_limit=round(limit, 2),
        fraction_of_limit=round(decode_tps / limit, 3),
        method=method,
    )


def bandwidth_now(threads: int) -> float:
    """Read bandwidth right now, taken in this (parent) process just before and after the
    worker runs: on a shared machine neighbours take part of the bandwidth for minutes at a
    time, and the cached figure cannot say what the run itself could have had."""
    return _measure_bandwidth(threads, size_mib=256, repeats=3)[0]


def ceiling_at_run(limit: Ceiling, bandwidth_gb_s: list[float], decode_tps: float) -> dict:
    """The same ceiling with the bandwidth measured around the run: the higher of the two, so
    that a share of it never flatters a run the neighbours slowed."""
    gb_s = max(bandwidth_gb_s)
    tokens_per_sec = gb_s * 1e9 / limit.bytes_per_token
    return {
        "memory_bandwidth_gb_s": bandwidth_gb_s,
        "decode_tokens_per_sec_limit": round(tokens_per_sec, 2),
        "fraction_of_limit": round(decode_tps / tokens_per_sec, 3),
        "method": "torch sum and dot over 256 MiB fp32 just before and after the worker; "
        "the higher",
    }


# ------------------------------------------------------------------ results


def _spread(values: list[float]) -> Spread:
    return Spread(
        min=round(min(values), 2),
        median=round(statistics.median(values), 2),
        max=round(max(values), 2),
    )


def to_result(
    manifest: Manifest, export_dir: Path, measured: dict[str, Any], with_ceiling: bool = True
) -> BenchResult:
    config = BenchConfig(**measured["config"])
    runs = measured["runs"]
    metrics = ("prefill_tokens_per_sec", "decode_tokens_per_sec", "ttft_ms")
    spread = {m: _spread([r[m] for r in runs]) for m in metrics}
    info = hostinfo.host()
    versions = hostinfo.versions()
    decode = spread["decode_tokens_per_sec"].median
    generated = [r["generated_tokens"] for r in runs]
    notes: dict[str, Any] = {
        "runner": "executorch TextLLMRunner (stock, greedy)",
        "fresh_process": measured.get("fresh_process", True),
        "python_baseline_rss_mb": measured["baseline_rss_mb"],
        "requested_gen_tokens": config.gen_tokens,
    }
    if "imports_rss_mb" in measured:
        notes.update(memory_above_imports(measured, manifest.file("program").bytes))
    if measured.get("dispatch_isa"):
        notes["dispatch_isa"] = measured["dispatch_isa"]
    if measured.get("locked_mb") is not None:
        notes["locked_mb"] = measured["locked_mb"]
    if "mlock" in measured:
        notes["mlock"] = measured["mlock"]
    if min(generated) < config.gen_tokens:
        notes["stopped_early"] = "the model emitted an eos id before -n tokens"
    if any(r["timer_floor"] for r in runs):
        notes["timer_floor"] = "an interval was under the runner's 1 ms resolution"
    if measured.get("image_encode_ms"):
        notes["runner"] = "executorch MultimodalRunner (stock, greedy)"
        notes["image_encode_ms"] = _spread(measured["image_encode_ms"]).model_dump()
        notes["prefill_includes"] = "the image's soft tokens; their encoding is in image_encode_ms"
    limit = ceiling(manifest, export_dir, config, decode) if with_ceiling and decode else None
    if limit is not None and measured.get("bandwidth_at_run_gb_s"):
        notes["ceiling_at_run"] = ceiling_at_run(limit, measured["bandwidth_at_run_gb_s"], decode)
    return BenchResult(
        source="host",
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=manifest.model.name,
        scheme=manifest.export.scheme,
        ctx=manifest.export.ctx,
        model_size_mb=round(manifest.file("program").bytes / 1e6, 2),
        device=info["cpu"],
        os=info["os"],
        runtime={k: versions[k] for k in ("executorch", "mobq", "torch")},
        threads=measured["threads"],
        prompt_tokens=int(statistics.median(r["prompt_tokens"] for r in runs)),
        generated_tokens=int(statistics.median(generated)),
        warmup=config.warmup,
        repetitions=config.reps,
        load_ms=round(measured["load_ms"], 1),
        ttft_ms=spread["ttft_ms"].median,
        prefill_tokens_per_sec=spread["prefill_tokens_per_sec"].median,
        decode_tokens_per_sec=decode,
        peak_rss_mb=measured["peak_rss_mb"],
        spread=spread,
        ceiling=limit,
        manifest_sha256=manifest.file("program").sha256,
        notes=notes,
    )


def memory_above_imports(measured: dict[str, Any], pte_bytes: int) -> dict[str, float]:
    """Peak RSS less what the imports held before the model loaded, and that over the .pte.

    The peak is after the imports, so the difference is what loading and running the
    program added: packed weights, KV cache, activations, the runner's buffers.
    """
    above = measured["peak_rss_mb"] - measured["imports_rss_mb"]
    return {
        "imports_rss_mb": measured["imports_rss_mb"],
        "above_imports_mb": round(above, 1),
        "above_imports_per_pte": round(above * 2**20 / pte_bytes, 3),
    }


def run(
    export_dir: Path,
    configs: list[BenchConfig],
    *,
    fresh_process: bool = True,
    with_ceiling: bool = True,
) -> list[BenchResult]:
    manifest = load_manifest(export_dir)
    for config in configs:
        config.check(manifest)
    results = []
    with progress.task("benchmarking", total=len(configs)) as advance:
        for config in configs:
            bracket = fresh_process and with_ceiling
            before = bandwidth_now(config.threads) if bracket else None
            if fresh_process:
                measured = measure_in_subprocess(export_dir, config)
            else:
                measured = measure(export_dir, config)
            if before is not None:
                around = [before, bandwidth_now(config.threads)]
                measured["bandwidth_at_run_gb_s"] = around
                remember_bandwidth(config.threads, max(around))
            measured["fresh_process"] = fresh_process
            results.append(to_result(manifest, export_dir, measured, with_ceiling))
            advance(1)
    return results


CSV_COLUMNS = (
    "model",
    "scheme",
    "ctx",
    "device",
    "threads",
    "prompt_tokens",
    "generated_tokens",
    "load_ms",
    "ttft_ms",
    "prefill_tokens_per_sec",
    "decode_tokens_per_sec",
    "peak_rss_mb",
    "model_size_mb",
    "decode_limit_tokens_per_sec",
    "fraction_of_limit",
)


def to_csv(results: list[BenchResult]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = {k: getattr(r, k) for k in CSV_COLUMNS if hasattr(r, k)}
        row["decode_limit_tokens_per_sec"] = (
            r.ceiling.decode_tokens_per_sec_limit if r.ceiling else ""
        )
        row["fraction_of_limit"] = r.ceiling.fraction_of_limit if r.ceiling else ""
        writer.writerow(row)
    return out.getvalue()


if __name__ == "__main__":  # the per-configuration worker: python -m mobq.benchmark OUT CONFIG FILE
    _worker_main(sys.argv[1:])
