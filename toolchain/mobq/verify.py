"""Stage `verify`: the .pte must agree with the eager model it came from, and run in the stock runner.

Teacher-forced comparison: each prompt is prefilled in one call, then a few more tokens are
decoded one at a time through the KV cache; every step's logits are compared with the eager
model's logits for the same positions (SQNR and top-1 agreement).

A quantized program is held to two references, like with like. The eager quantized model
(transformers + torchao) is the fidelity reference: min SQNR against it at or above the gate
passes. Below the gate, the quantization noise itself decides: XNNPACK's 8da4w and torchao's
are two correct implementations that round int8 activations differently, and a deep network
amplifies those roundings (docs/performance.md). Such a program still passes when its distance
to the eager quantized model is far below that model's own distance to the float model (min
SQNR at least `NOISE_MARGIN_DB` above the eager model's mean SQNR against float: the two
implementations differ by under a tenth of the noise they share), and it is as close to the
float model as the eager quantized model is (mean SQNR within `FLOAT_MARGIN_DB`, top-1 within
`TOP1_MARGIN`). A real bug (a wrong scale, swapped layers, a wrong rope base) fails both
(tests/test_gate.py injects each). The pipeline passes no float reference when the user set
the gate (`--min-sqnr`): then the threshold alone decides.
"""

from __future__ import annotations

import functools
import gc
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobq import progress
from mobq.errors import VerificationFailed
from mobq.hostinfo import release_memory
from mobq.metadata import PromptFormat, load_hf_tokenizer
from mobq.runtime import (
    capture_runner_output,
    load_program,
    quiet_native_logs,
    runner_api,
    text_runner,
)

VERIFY_TEXTS = (
    "Explain in two sentences why the sky looks blue during the day.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
    "Translate to French: the weather is lovely today, let us walk along the river.",
)


@dataclass
class StepComparison:
    prompt: int
    position: int
    sqnr_db: float
    top1_match: bool


# Like with like: how far below the shared quantization noise the two implementations'
# disagreement must be, how much further from the float model than the eager quantized model
# the program may be, and how many more of its top-1 tokens may differ from the float model's.
NOISE_MARGIN_DB = 10.0
FLOAT_MARGIN_DB = 1.0
TOP1_MARGIN = 0.1


@dataclass
class FloatComparison:
    """The program and the eager quantized model, each against the float model."""

    reference: str
    quantized_sqnr_db_mean: float  # eager quantized model vs float: quantization noise
    program_sqnr_db_mean: float  # .pte vs float
    quantized_top1: float
    program_top1: float

    def failures(self, min_sqnr_db: float) -> list[str]:
        """Why the program is not like the eager quantized model (empty: it is)."""
        out = []
        if min_sqnr_db < self.quantized_sqnr_db_mean + NOISE_MARGIN_DB:
            out.append(
                f"its min SQNR vs the eager model is not {NOISE_MARGIN_DB:g} dB above that "
                f"model's quantization noise ({self.quantized_sqnr_db_mean:.1f} dB vs float)"
            )
        if self.program_sqnr_db_mean < self.quantized_sqnr_db_mean - FLOAT_MARGIN_DB:
            out.append(
                f"it is further from the float model ({self.program_sqnr_db_mean:.1f} dB vs "
                f"{self.quantized_sqnr_db_mean:.1f} dB, margin {FLOAT_MARGIN_DB:g} dB)"
            )
        if self.program_top1 < self.quantized_top1 - TOP1_MARGIN:
            out.append(
                f"its top-1 agrees less with the float model ({self.program_top1:.0%} vs "
                f"{self.quantized_top1:.0%})"
            )
        return out


@dataclass
class VerifyResult:
    reference: str
    prompts: int
    steps: int
    sqnr_db_min: float
    sqnr_db_mean: float
    top1_agreement: float
    threshold_db: float
    passed: bool
    runner_tokens: int
    runner_text: str
    comparisons: list[StepComparison] = field(default_factory=list)
    float_comparison: FloatComparison | None = None
    gate: str = ""  # which criterion passed, or why none did

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("comparisons")
        return data


def sqnr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of `other` against `reference`, in dB."""
    reference = reference.double().flatten()
    noise = (reference - other.double().flatten()).pow(2).sum()
    signal = reference.pow(2).sum()
    if noise == 0:
        return math.inf
    return float(10 * torch.log10(signal / noise))


def prompt_token_ids(
    tokenizer_dir: Path, fmt: PromptFormat | None, add_bos_id: int | None
) -> list[list[int]]:
    tokenizer = load_hf_tokenizer(tokenizer_dir)
    out = []
    for text in VERIFY_TEXTS:
        if fmt is not None:
            ids = tokenizer.encode(fmt.render([("user", text)]), add_special_tokens=False).ids
        else:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            if add_bos_id is not None:
                ids = [add_bos_id, *ids]
        out.append(ids)
    return out


def load_reference(model_dir: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from mobq.hfmodel import load_causal_lm

    return lean_reference(load_causal_lm(model_dir, dtype=dtype))


# Quantized tables with more rows than this are used a block of rows at a time.
LEAN_ROWS = 16384


def lean_reference(model: torch.nn.Module) -> torch.nn.Module:
    """Keep torchao's big quantized tables quantized while the reference runs.

    torchao dequantizes a weight whole on every call: for Qwen3's 151936-row embedding and
    lm_head that is 1.2 GB of fp32 per forward. The embedding dequantizes only the rows it
    gathers and lm_head works in row blocks: the same values, a fraction of the memory.
    Only the table lookup and the matmul are replaced; what a subclass adds around them
    (Gemma's sqrt(hidden) embedding scale) still runs.
    """
    from torchao.quantization import IntxUnpackedToInt8Tensor

    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, IntxUnpackedToInt8Tensor) or weight.shape[0] <= LEAN_ROWS:
            continue
        if weight.block_size[0] != 1:  # a block spanning rows cannot be split by rows
            continue
        if isinstance(module, torch.nn.Embedding) and module.max_norm is None:
            module.__class__ = _lean_embedding_class(type(module))
        elif type(module).forward is torch.nn.Linear.forward:  # a subclass's own forward stays
            module.forward = functools.partial(_linear_by_rows, module)  # type: ignore[method-assign]
    return model


class LeanEmbedding(torch.nn.Embedding):
    """nn.Embedding whose lookup dequantizes only the gathered rows of a torchao table."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _embedding_rows(self.weight, input)


@functools.cache
def _lean_embedding_class(cls: type[torch.nn.Embedding]) -> type[torch.nn.Embedding]:
    """`cls` with LeanEmbedding's lookup where `cls` reaches nn.Embedding's.

    Replacing a subclass's forward would drop its own work: Gemma's scaled embedding
    multiplies the lookup by sqrt(hidden), and without it the reference fell to 1.2 dB at
    the embeddings. Mixed in below `cls`, LeanEmbedding is what `cls`'s super().forward()
    calls (MRO: Lean<cls>, cls, LeanEmbedding, nn.Embedding). A subclass that never calls
    super().forward() keeps its own lookup: whole-table dequantization, but correct.
    """
    if cls is torch.nn.Embedding:
        return LeanEmbedding
    return type(f"Lean{cls.__name__}", (cls, LeanEmbedding), {})


def _embedding_rows(weight: Any, ids: torch.Tensor) -> torch.Tensor:
    """Dequantize only the looked-up rows (dequantization is elementwise within a row)."""
    flat = ids.reshape(-1)
    rows = type(weight)(
        weight.qdata[flat],
        weight.scale[flat],
        weight.zero_point[flat],
        weight.target_dtype,
        weight.block_size,
        weight.dtype,
        weight.activation_quantization,
    )
    return rows.dequantize().reshape(*ids.shape, weight.shape[1])


def _linear_by_rows(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The linear's outputs a block of weight rows at a time (torchao slices quantized rows)."""
    weight, bias = module.weight, module.bias
    parts = []
    for start in range(0, weight.shape[0], LEAN_ROWS):
        end = min(start + LEAN_ROWS, weight.shape[0])
        part_bias = None if bias is None else bias[start:end]
        parts.append(torch.nn.functional.linear(x, weight[start:end], part_bias))
    return torch.cat(parts, dim=-1)


@torch.no_grad()
def reference_logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def batched_reference_logits(
    model: torch.nn.Module, sequences: list[list[int]]
) -> list[torch.Tensor]:
    """Each sequence's logits from one forward over all of them, right-padded and masked.

    torchao dequantizes every weight on every forward, and at full size that dominates the
    reference's time: one forward for all prompts pays it once. Attention is causal, so no
    position sees the padding after it; the mask keeps padding out of every softmax.
    """
    longest = max(len(ids) for ids in sequences)
    batch = torch.zeros(len(sequences), longest, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for row, ids in enumerate(sequences):
        batch[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    logits = model(input_ids=batch, attention_mask=mask).logits
    return [logits[row, : len(ids)].float() for row, ids in enumerate(sequences)]


def pte_step_logits(method: Any, prompt: list[int], decode: list[int]) -> list[torch.Tensor]:
    """Logits after prefilling `prompt`, then after each token of `decode`, from the program."""
    out = [method.execute([torch.tensor([prompt]), torch.tensor([0])])[0].reshape(-1)]
    for offset, token in enumerate(decode):
        position = len(prompt) + offset
        out.append(
            method.execute([torch.tensor([[token]]), torch.tensor([position])])[0].reshape(-1)
        )
    return out


def run(
    pte: Path,
    reference_dir: Path,
    tokenizer_dir: Path,
    *,
    reference_name: str,
    threshold_db: float,
    prompt_format: PromptFormat | None,
    bos_id: int | None,
    max_prefill: int,
    ctx: int,
    decode_steps: int = 4,
    runner_tokenizer: Path | None = None,
    float_dir: Path | None = None,
) -> VerifyResult:
    """Compare the program with `reference_dir`'s model (and, quantized, with `float_dir`'s)."""
    prompts = prompt_token_ids(tokenizer_dir, prompt_format, bos_id)
    splits = split_prompts(prompts, max_prefill, ctx, decode_steps)
    # The eager models and the program are never in memory together: each is freed in turn.
    expected = _reference_steps(reference_dir, splits, reference_name)
    got = _program_steps(pte, splits)
    comparisons = compare_steps(splits, expected, got)
    float_comparison = None
    # The float model only settles what the plain gate leaves open (a deep quantized model
    # whose two implementations drift apart); at full size it is minutes of CPU.
    if float_dir is not None and min(c.sqnr_db for c in comparisons) < threshold_db:
        floats = _reference_steps(float_dir, splits, "float model", _float_dtype(float_dir))
        float_comparison = against_float(floats, expected, got, f"float model ({float_dir})")
        del floats
    del expected, got
    gc.collect()
    runner_tokens, runner_text = runner_smoke_test(
        pte, runner_tokenizer or Path(tokenizer_dir) / "tokenizer.json"
    )
    values = [c.sqnr_db for c in comparisons]
    finite = [v for v in values if math.isfinite(v)] or [200.0]
    minimum = round(min(values), 2) if values else 0.0
    passed, gate = judge(minimum, threshold_db, float_comparison)
    return VerifyResult(
        reference=reference_name,
        prompts=len(prompts),
        steps=len(comparisons),
        sqnr_db_min=minimum,
        sqnr_db_mean=round(sum(finite) / len(finite), 2),
        top1_agreement=round(sum(c.top1_match for c in comparisons) / len(comparisons), 4),
        threshold_db=threshold_db,
        passed=bool(values) and passed and runner_tokens > 0,
        runner_tokens=runner_tokens,
        runner_text=runner_text,
        comparisons=comparisons,
        float_comparison=float_comparison,
        gate=gate,
    )


Steps = list[list[torch.Tensor]]  # per prompt, the compared positions' logits
Splits = list[tuple[list[int], list[int]]]  # per prompt, (prefilled ids, ids decoded one by one)


def split_prompts(
    prompts: list[list[int]], max_prefill: int, ctx: int, decode_steps: int
) -> Splits:
    """Each prompt as a prefill that fits the program, then up to `decode_steps` decoded ids."""
    limit = min(max_prefill, ctx - decode_steps)
    splits = []
    for ids in prompts:
        prefill = ids[: max(1, min(len(ids) - decode_steps, limit))]
        splits.append((prefill, ids[len(prefill) : len(prefill) + decode_steps]))
    return splits


def compare_steps(splits: Splits, expected: Steps, got: Steps) -> list[StepComparison]:
    """SQNR and top-1 agreement of the program's logits at every compared position."""
    return [
        StepComparison(
            index,
            len(prefill) - 1 + step,
            sqnr_db(expected[index][step], logits),
            bool(expected[index][step].argmax() == logits.argmax()),
        )
        for index, (prefill, _) in enumerate(splits)
        for step, logits in enumerate(got[index])
    ]


def _reference_steps(
    model_dir: Path,
    splits: Splits,
    name: str,
    dtype: torch.dtype = torch.float32,
) -> Steps:
    """The eager model's logits at the compared positions: the last prefill one, each decoded."""
    with progress.task(f"running the reference ({name})"):
        reference = load_reference(model_dir, dtype)
        logits = batched_reference_logits(reference, [p + d for p, d in splits])
        out = [
            list(full[len(p) - 1 :].clone()) for full, (p, _) in zip(logits, splits, strict=True)
        ]
        del logits
        del reference
        release_memory()  # the next model loads into memory the OS has back, not glibc's arenas
    return out


def _program_steps(pte: Path, splits: Splits) -> Steps:
    program = load_program(pte)
    out: Steps = []
    with (
        progress.task("running the program", total=len(splits)) as advance,
        quiet_native_logs(),
    ):
        method = program.load_method("forward")
        for prefill, decode in splits:
            out.append(pte_step_logits(method, prefill, decode))
            advance(1)
    del method, program
    # The runtime's freed buffers (XNNPACK's packed weights: the .pte's size) stay in glibc's
    # arenas otherwise, under the float model loaded next: 4B's verify peaked at 10.2 GB so.
    release_memory()
    return out


def _float_dtype(model_dir: Path) -> torch.dtype:
    """fp32 where it fits easily; else the checkpoint's bf16 (its rounding, ~50 dB, is far
    below 8da4w's noise, and both the program and the eager model are measured against it)."""
    from mobq.checkpoint import checkpoint_bytes

    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    fp32_bytes = 2 * checkpoint_bytes(model_dir)  # checkpoints are bf16 on disk
    return torch.float32 if fp32_bytes < available / 3 else torch.bfloat16


def against_float(floats: Steps, quantized: Steps, program: Steps, name: str) -> FloatComparison:
    """The program and the eager quantized model, each measured against the float model."""

    def pairs(other: Steps) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (f, o)
            for fs, others in zip(floats, other, strict=True)
            for f, o in zip(fs, others, strict=True)
        ]

    def mean_sqnr(other: Steps) -> float:
        values = [sqnr_db(f, o) for f, o in pairs(other)]
        finite = [v for v in values if math.isfinite(v)] or [200.0]
        return round(sum(finite) / len(finite), 2)

    def top1(other: Steps) -> float:
        matched = [bool(f.argmax() == o.argmax()) for f, o in pairs(other)]
        return round(sum(matched) / len(matched), 4)

    return FloatComparison(
        name, mean_sqnr(quantized), mean_sqnr(program), top1(quantized), top1(program)
    )


def judge(
    min_sqnr_db: float, threshold_db: float, float_comparison: FloatComparison | None
) -> tuple[bool, str]:
    """(passed, which criterion decided) for the logit comparison."""
    if min_sqnr_db >= threshold_db:
        return True, f"min SQNR vs the reference >= {threshold_db:g} dB"
    if float_comparison is None:
        return False, f"min SQNR vs the reference < {threshold_db:g} dB"
    f = float_comparison
    failures = f.failures(min_sqnr_db)
    if not failures:
        return True, (
            f"like the eager quantized model: {min_sqnr_db:.1f} dB from it, which is "
            f"{f.quantized_sqnr_db_mean:.1f} dB from float (program {f.program_sqnr_db_mean:.1f} "
            f"dB); top-1 vs float {f.program_top1:.0%} vs {f.quantized_top1:.0%}"
        )
    return False, "not like the eager quantized model either: " + "; ".join(failures)


def runner_smoke_test(pte: Path, tokenizer_json: Path, max_new_tokens: int = 8) -> tuple[int, str]:
    """Generate a few tokens with ExecuTorch's stock TextLLMRunner: the one the apps link."""
    runner = text_runner(pte, tokenizer_json)
    runners = runner_api()
    stats: list[Any] = []
    config = runners.GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, echo=False)
    with capture_runner_output() as output:
        runner.generate("Hello", config, stats_callback=stats.append)
    return (stats[0].num_generated_tokens if stats else 0), output.text()


def require_pass(
    result: VerifyResult, runner: str = "TextLLMRunner", compared: str | None = None
) -> None:
    """A one-line VerificationFailed unless the program agreed and its runner generated."""
    if result.passed:
        return
    if result.runner_tokens == 0:
        raise VerificationFailed(f"the .pte produced no tokens in ExecuTorch's {runner}")
    float_part = f", and {result.gate}" if result.float_comparison is not None else ""
    raise VerificationFailed(
        f"the .pte disagrees with {result.reference}: SQNR {result.sqnr_db_min:.1f} dB "
        f"(min over {compared or f'{result.steps} steps'}) is below the "
        f"{result.threshold_db:.0f} dB gate{float_part}; no model.pte was written"
    )
