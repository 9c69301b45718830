"""`mobq bench-gpu`: peak GPU memory and batch-1 latency of a checkpoint vs its bf16 baseline.

Each model is measured in a fresh spawned process, so one model's allocator pool, compiled
graphs and CUDA graphs never count towards the other's peak. The headline peak is
`torch.cuda.max_memory_reserved()` from before `from_pretrained` to the end of the last
`generate` (what the torchao model cards report); the load and generation phases are also
reported apart, so a transient while loading is not mistaken for the serving footprint.
Latency is `generate` for a fixed number of prompt and new tokens (min_new_tokens pins the
length, so random weights stopping early cannot flatter it).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.errors import InputError, ResourceError

RESULT_PREFIX = "MOBQ_GPU_BENCH_RESULT "
# What the figures are, written into every result so a JSON file explains itself.
METHOD = {
    "peak_reserved_gb": "torch.cuda.max_memory_reserved(), before from_pretrained to after the "
    "last generate (warm-ups included), one fresh process per model; loaded on the CPU, then "
    "moved to the GPU",
    "generate_peak_allocated_gb": "torch.cuda.max_memory_allocated() with the peak reset after loading",
    "latency_s": "median wall time of the timed generate calls (cuda-synchronized), batch 1",
    "memory_reduction": "1 - quantized / baseline peak_reserved_gb",
    "speedup": "baseline / quantized latency_s",
}
COMPILE_MODES = ("reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune", "default")
# generate: transformers' generate (static cache, its own compiled decoder); loop: mobq's greedy
# loop over one static cache kept across runs, the decode step compiled once (fullgraph).
DECODERS = ("generate", "loop")
INT4_KERNELS = ("tinygemm", "gemlite")
FILLER = "Summarize the history of the printing press and its effect on science. "


@dataclass(frozen=True)
class BenchSettings:
    prompt_tokens: int = 256
    new_tokens: int = 256
    runs: int = 3
    warmup: int = 2  # the first compiles and the second records CUDA graphs
    compile: bool = True  # static cache, which makes transformers torch.compile the decoder
    # transformers' CompileConfig mode: "reduce-overhead" adds CUDA graphs; the fallback
    # "max-autotune-no-cudagraphs" is for kernels that cannot be captured.
    compile_mode: str = "reduce-overhead"
    decoder: str = "generate"
    # loop only: call torchao's tinygemm int4 matmul on plain tensors rather than through the
    # tensor subclass, whose flatten/unflatten runs in Python for every linear on every step.
    plain_int4: bool = True
    # loop + plain_int4: prefill-sized inputs dequantize each weight to bf16 for the dense
    # matmul (tinygemm is 20-40x slower than cuBLAS at 256 rows on an H200).
    dense_prefill: bool = True
    # loop + plain_int4: the decode kernel. tinygemm (torchao's) or GemLite's Triton kernels
    # on the same int4 values, HQQ scales and zeros.
    int4_kernel: str = "tinygemm"

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "new_tokens", "runs"):
            if getattr(self, name) <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive")
        if self.warmup < 0:
            raise InputError("--warmup must be zero or more")
        if self.compile_mode not in COMPILE_MODES:
            raise InputError(
                f"unknown compile mode '{self.compile_mode}'; choose one of: "
                + ", ".join(COMPILE_MODES)
            )
        if self.decoder not in DECODERS:
            raise InputError(
                f"unknown decoder '{self.decoder}'; choose one of: " + ", ".join(DECODERS)
            )
        if self.int4_kernel not in INT4_KERNELS:
            raise InputError(
                f"unknown int4 kernel '{self.int4_kernel}'; choose one of: "
                + ", ".join(INT4_KERNELS)
            )
        if self.decoder == "loop" and not self.compile:
            raise InputError("--decoder loop compiles its decode step: drop --no-compile")


def require_cuda() -> str:
    """The GPU's name; a clear error on a host without one (before any model is read)."""
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = f"torch {torch.__version__} sees no CUDA device" + (
            "" if built else " (a CPU-only build)"
        )
        raise ResourceError(f"bench-gpu needs a CUDA GPU: {why}; run it on the GPU machine")
    return torch.cuda.get_device_name(0)


def chat_prompt_ids(tokenizer: Any, length: int) -> list[int]:
    """A one-turn chat prompt of exactly `length` tokens: the template around filler text."""
    marker = "\x00MOBQ\x00"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    if not isinstance(text, str) or marker not in text:
        raise InputError("the tokenizer's chat template does not render a user message")
    head, tail = text.split(marker)
    prefix = tokenizer.encode(head, add_special_tokens=False)
    suffix = tokenizer.encode(tail, add_special_tokens=False)
    room = length - len(prefix) - len(suffix)
    if room <= 0:
        raise InputError(
            f"--prompt-tokens {length} is shorter than the chat template itself "
            f"({len(prefix) + len(suffix)} tokens)"
        )
    filler: list[int] = []
    while len(filler) < room:
        filler += tokenizer.encode(FILLER, add_special_tokens=False)
    return prefix + filler[:room] + suffix


def _generate_kwargs(settings: BenchSettings, tokenizer: Any) -> dict[str, Any]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings.new_tokens,
        "min_new_tokens": settings.new_tokens,
        "do_sample": False,
        "pad_token_id": pad,
    }
    if settings.compile:
        from transformers import CompileConfig

        kwargs["cache_implementation"] = "static"
        kwargs["compile_config"] = CompileConfig(mode=settings.compile_mode)
    else:
        kwargs["disable_compile"] = True
    return kwargs


def measure(model_dir: str, settings: BenchSettings) -> dict[str, Any]:
    """Load `model_dir` on the GPU and time `generate`; run it in a process of its own."""
    import torch

    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model, tokenizer = _load(model_dir)
    load_s = time.perf_counter() - started
    load_peak = _peaks()
    weights = torch.cuda.memory_allocated()
    plain_linears, plain_diff = 0, None
    if settings.decoder == "loop" and settings.plain_int4:
        plain_linears, plain_diff = _swap_checked(model, tokenizer, settings)
    # From here the peaks are generation's own; the reserved pool left by loading still counts.
    torch.cuda.reset_peak_memory_stats()
    prefill: list[float] = []
    if settings.decoder == "loop":
        seconds = _timed_loop(model, tokenizer, settings, prefill, [])
    else:
        seconds = _timed_generations(model, tokenizer, settings)
    generate_peak = _peaks()
    latency = statistics.median(seconds[settings.warmup :])
    return {
        "model": model_dir,
        "load_s": round(load_s, 2),
        "weights_gb": weights / 1e9,
        "peak_reserved_gb": max(load_peak[0], generate_peak[0]),
        "peak_allocated_gb": max(load_peak[1], generate_peak[1]),
        "load_peak_reserved_gb": load_peak[0],
        "load_peak_allocated_gb": load_peak[1],
        "generate_peak_reserved_gb": generate_peak[0],
        "generate_peak_allocated_gb": generate_peak[1],
        "latency_s": latency,
        "latency_runs_s": seconds[settings.warmup :],
        "warmup_runs_s": seconds[: settings.warmup],
        "tokens_per_s": settings.new_tokens / latency,
        # loop only: time to the first token (eager prefill), median of the timed runs
        "prefill_s": statistics.median(prefill[settings.warmup :]) if prefill else None,
        # transformers compiles only when its criteria hold: record that it really did.
        "compiled": settings.decoder == "loop"
        or getattr(model, "_compiled_call", None) is not None,
        "plain_int4_linears": plain_linears,
        "plain_int4_max_abs_logit_diff": plain_diff,
        "weight_types": _weight_types(model),
    }


def _load(model_dir: str, device: str = "cuda") -> tuple[Any, Any]:
    """Load on the CPU, then move to `device`.

    Loading a torchao int4 checkpoint with device_map="cuda" peaks at 8.19 GB allocated for
    5.27 GB of weights (H200, Qwen3-8B); staging on the CPU and moving the finished model
    peaks at the weights themselves (5.29 GB reserved), with the same generated tokens.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # No device_map: transformers then loads on the CPU (and needs no accelerate).
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = model.to(device).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _peaks() -> tuple[float, float]:
    """(max reserved, max allocated) in GB since the last reset."""
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_reserved() / 1e9, torch.cuda.max_memory_allocated() / 1e9


def _timed_generations(model: Any, tokenizer: Any, settings: BenchSettings) -> list[float]:
    """Seconds of each `generate`, warm-ups first; each must make exactly new_tokens."""
    import torch

    ids = torch.tensor([chat_prompt_ids(tokenizer, settings.prompt_tokens)], device="cuda")
    kwargs = _generate_kwargs(settings, tokenizer)
    seconds: list[float] = []
    for _ in range(settings.warmup + settings.runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
        generated = out.shape[1] - ids.shape[1]
        if generated != settings.new_tokens:
            raise ResourceError(f"generate made {generated} tokens, not {settings.new_tokens}")
    return seconds


def _timed_loop(
    model: Any,
    tokenizer: Any,
    settings: BenchSettings,
    prefill_seconds: list[float],
    tokens: list[int],
) -> list[float]:
    """Seconds of each greedy generation by mobq's loop, warm-ups first.

    One StaticCache serves every run (reset, never rebuilt), so the compiled decode step and
    its CUDA graph see the same cache tensors each time; prefill runs eager, as transformers
    does. Exactly new_tokens tokens are made: the loop has no stopping criteria. Fills
    `prefill_seconds` per run and `tokens` with the last run's tokens.
    """
    import torch
    from transformers import StaticCache

    device = model.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ids = torch.tensor([chat_prompt_ids(tokenizer, settings.prompt_tokens)], device=device)
    cache = StaticCache(
        config=model.config, max_cache_len=settings.prompt_tokens + settings.new_tokens
    )

    def decode_step(token: Any) -> Any:
        logits = model(input_ids=token, past_key_values=cache, use_cache=True).logits
        return logits[:, -1:].argmax(-1)

    step = torch.compile(decode_step, mode=settings.compile_mode, fullgraph=True)
    seconds: list[float] = []
    for _ in range(settings.warmup + settings.runs):
        sync()
        started = time.perf_counter()
        with torch.inference_mode():
            cache.reset()
            # Greedy decoding needs the last position's logits only, as servers compute them.
            logits = model(
                input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1
            ).logits
            token = logits[:, -1:].argmax(-1)
            sync()
            prefill_seconds.append(time.perf_counter() - started)
            made = [token]
            for _ in range(settings.new_tokens - 1):
                torch.compiler.cudagraph_mark_step_begin()
                token = step(token).clone()  # the graph's output buffer is reused next replay
                made.append(token)
        sync()
        seconds.append(time.perf_counter() - started)
        tokens[:] = torch.cat(made, dim=1)[0].tolist()
    return seconds


def _swap_checked(model: Any, tokenizer: Any, settings: BenchSettings) -> tuple[int, float | None]:
    """Swap to plain int4 linears (and GemLite's if asked); last logits before vs after."""
    import torch

    from mobq.server import int4_gpu

    if not any(type(p.data).__name__ == "Int4TilePackedTo4dTensor" for p in model.parameters()):
        return 0, None  # a bf16 baseline: nothing to swap, no forward spent checking it
    ids = torch.tensor([chat_prompt_ids(tokenizer, settings.prompt_tokens)], device="cuda")
    with torch.inference_mode():
        before = model(input_ids=ids, logits_to_keep=1).logits[:, -1].float()
        swapped = int4_gpu.use_plain_int4_linears(model, settings.dense_prefill)
        if settings.int4_kernel == "gemlite":
            int4_gpu.load_gemlite_tuning(torch.cuda.get_device_name(0))
            int4_gpu.use_gemlite_int4_linears(model)
        after = model(input_ids=ids, logits_to_keep=1).logits[:, -1].float()
    diff = float((before - after).abs().max())
    torch.cuda.empty_cache()  # the check's transients are not the serving footprint
    return swapped, diff


def _weight_types(model: Any) -> dict[str, int]:
    """Which tensor class holds each parameter: shows what still sits in bf16."""
    counts: dict[str, int] = {}
    for _, param in model.named_parameters():
        key = f"{type(param.data).__name__}:{param.dtype}".replace("torch.", "")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def measure_isolated(model_dir: Path, settings: BenchSettings) -> dict[str, Any]:
    """`measure` in a child interpreter: nothing of one model's GPU state reaches the next.

    A plain subprocess rather than multiprocessing: spawn re-imports the caller's __main__,
    which re-runs any script that calls this without a main guard.
    """
    import json
    import subprocess
    import sys

    args = json.dumps({"model_dir": str(model_dir), "settings": asdict(settings)})
    proc = subprocess.run(
        [sys.executable, "-m", "mobq.server.gpu_bench", args],
        capture_output=True,
        text=True,
        check=False,
    )
    return parse_child_output(proc.returncode, proc.stdout, proc.stderr)


def parse_child_output(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The child's last stdout line is its JSON result; otherwise its error, on one line."""
    import json

    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if returncode == 0 and lines:
        return json.loads(lines[-1][len(RESULT_PREFIX) :])
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
    raise ResourceError(f"the benchmark process failed (exit {returncode}): {tail[0].strip()}")


def _child_main(argv: list[str]) -> None:
    import json

    request = json.loads(argv[0])
    result = measure(request["model_dir"], BenchSettings(**request["settings"]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def compare(
    gpu: str,
    settings: BenchSettings,
    quantized: dict[str, Any],
    baseline: dict[str, Any] | None,
) -> dict[str, Any]:
    """Side-by-side figures; reduction and speedup are against the bf16 baseline."""
    import torch

    result: dict[str, Any] = {
        "gpu": gpu,
        "versions": f"torch {torch.__version__}, {_package_versions()}",
        "settings": asdict(settings),
        "quantized": quantized,
        "baseline": baseline,
        "method": METHOD,
        "memory_reduction": None,
        "speedup": None,
    }
    if baseline:
        result["memory_reduction"] = (
            1 - quantized["peak_reserved_gb"] / baseline["peak_reserved_gb"]
        )
        result["speedup"] = baseline["latency_s"] / quantized["latency_s"]
    return result


def _package_versions() -> str:
    from mobq.hostinfo import versions

    found = versions()
    return ", ".join(f"{name} {found[name]}" for name in ("torchao", "transformers"))


def run(
    model_dir: Path,
    baseline_dir: Path | None = None,
    settings: BenchSettings | None = None,
    save: bool = False,
) -> dict[str, Any]:
    settings = settings or BenchSettings()
    gpu = require_cuda()
    for directory in filter(None, (model_dir, baseline_dir)):
        if not (Path(directory) / "config.json").is_file():
            raise InputError(f"{directory} is not a Hugging Face checkpoint (no config.json)")
    with progress.stage("bench-gpu", f"{model_dir} on {gpu}"):
        quantized = measure_isolated(Path(model_dir), settings)
        baseline = measure_isolated(Path(baseline_dir), settings) if baseline_dir else None
    result = compare(gpu, settings, quantized, baseline)
    if save:
        from mobq.server import modelcard

        modelcard.save_figures(Path(model_dir), result)
    return result


def random_checkpoint(
    recipe_name: str, out_dir: Path, tokenizer_dir: Path | None = None, seed: int = 0
) -> Path:
    """The recipe's architecture with random bf16 weights drawn on the GPU, streamed to disk.

    Speed and memory do not depend on weight values; drawing on the GPU keeps an 8B build to
    seconds, and no fp32 copy of the model exists anywhere.
    """
    import json

    import torch
    from transformers import AutoConfig

    from mobq.checkpoint import CheckpointWriter, copy_side_files
    from mobq.random_weights import INIT_STD, meta_model, norm_centres, parameter_shapes
    from mobq.recipes import get_recipe

    require_cuda()
    recipe = get_recipe(recipe_name)
    architecture = {**recipe.architecture, "dtype": "bfloat16"}
    config = AutoConfig.for_model(**architecture)
    model = meta_model(config)
    shapes, centres = parameter_shapes(config, model), norm_centres(model)
    generator = torch.Generator(device="cuda").manual_seed(seed)
    with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
        (tmp / "config.json").write_text(json.dumps(architecture, indent=2))
        writer = CheckpointWriter(tmp)
        with progress.task(f"random bf16 weights for {recipe.name}", total=len(shapes)) as advance:
            for name, shape in shapes.items():
                centre = centres.get(name, 1.0)
                writer.add(name, _random_on_gpu(name, shape, generator, INIT_STD, centre).cpu())
                advance(1)
        writer.close()
        if tokenizer_dir is None:  # the synthetic ChatML tokenizer: its ids fit any vocab
            from mobq.tinylm import build_tokenizer

            tokenizer_dir = build_tokenizer(tmp / "_tokenizer")
        copy_side_files(Path(tokenizer_dir), tmp)
        fsutil.remove(tmp / "_tokenizer")
    return Path(out_dir)


def _random_on_gpu(
    name: str, shape: tuple[int, ...], generator: Any, std: float, centre: float
) -> Any:
    import torch

    if len(shape) == 1:  # norms near their init, biases zero, as random_weights does on the CPU
        if name.endswith("bias"):
            return torch.zeros(shape, dtype=torch.bfloat16, device="cuda")
        noise = torch.randn(shape, generator=generator, device="cuda", dtype=torch.bfloat16)
        return centre + 0.1 * noise
    return torch.randn(shape, generator=generator, device="cuda", dtype=torch.bfloat16) * std


if __name__ == "__main__":
    import sys

    _child_main(sys.argv[1:])
