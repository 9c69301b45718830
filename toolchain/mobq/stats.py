"""The benchmark figures, defined once: computed from ExecuTorch's runner stats JSON.

`mobq bench`, the Android app (android_app/core/.../RunnerStats.kt) and the iOS app
(ios_app/MobqCore/.../RunnerStats.swift) apply these same rules, and all three are tested on
the golden files in docs/schema/examples/runner-stats/. The stats JSON is what
`stats_to_json_string` writes (extension/llm/runner/stats.h, ExecuTorch 1.5); the timings
assume generation with echo off, so nothing but tokens reaches the token callback.

- TTFT: inference_start_ms -> first_token_ms (tokenize + prefill + the first sample).
- prefill tokens/s: prompt_tokens over inference_start_ms -> prompt_eval_end_ms.
- decode tokens/s: generated_tokens over prompt_eval_end_ms -> inference_end_ms. The runner
  counts only its decode steps as generated_tokens; the token prefill produced came before.
- generated tokens (what a reader means: every token the model produced) = generated_tokens + 1.
- An interval under one clock unit (1 ms) counts as one unit and sets `timer_floor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mobq.errors import StageError

DEFAULT_UNITS_PER_SECOND = 1000.0  # stats.h SCALING_FACTOR_UNITS_PER_SECOND: milliseconds
REQUIRED = (
    "prompt_tokens",
    "generated_tokens",
    "inference_start_ms",
    "prompt_eval_end_ms",
    "first_token_ms",
    "inference_end_ms",
)


@dataclass(frozen=True)
class Figures:
    """One generation's figures, as every result file reports them."""

    prompt_tokens: int
    generated_tokens: int
    ttft_ms: float
    prefill_tokens_per_sec: float
    decode_tokens_per_sec: float
    timer_floor: bool


def _field(stats: Mapping[str, Any], key: str) -> float:
    if key not in stats or stats[key] is None:
        raise StageError(f"runner stats: missing field '{key}'")
    value = stats[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StageError(f"runner stats: field '{key}' should be a number, got {value!r}")
    return float(value)


def _interval(stats: Mapping[str, Any], start: str, end: str) -> tuple[float, bool]:
    """Clock units from `start` to `end`, floored at one unit (flagged when floored)."""
    units = _field(stats, end) - _field(stats, start)
    if units < 0:
        raise StageError(f"runner stats: {end} is before {start}")
    return max(units, 1.0), units < 1


def figures(stats: Mapping[str, Any]) -> Figures:
    """TTFT, prefill and decode rates and token counts from one stats JSON (parsed)."""
    for key in REQUIRED:
        _field(stats, key)
    per_second = float(stats.get("SCALING_FACTOR_UNITS_PER_SECOND") or DEFAULT_UNITS_PER_SECOND)
    prompt_tokens = int(_field(stats, "prompt_tokens"))
    decode_steps = int(_field(stats, "generated_tokens"))
    prefill, floor_prefill = _interval(stats, "inference_start_ms", "prompt_eval_end_ms")
    ttft, floor_ttft = _interval(stats, "inference_start_ms", "first_token_ms")
    decode, floor_decode = _interval(stats, "prompt_eval_end_ms", "inference_end_ms")
    return Figures(
        prompt_tokens=prompt_tokens,
        generated_tokens=decode_steps + 1,
        ttft_ms=ttft * 1000.0 / per_second,
        prefill_tokens_per_sec=prompt_tokens / (prefill / per_second),
        decode_tokens_per_sec=decode_steps / (decode / per_second) if decode_steps else 0.0,
        timer_floor=floor_prefill or floor_ttft or (floor_decode and decode_steps > 0),
    )
