"""How much memory and CPU a job needs: one estimate used by `mobq sweep` and the docs.

The export's peak is dominated by the weights held at once during lowering. The factors
below come from measured exports (docs/performance.md) and are deliberately a little high:
an estimate that is too low lets Ray overcommit a machine and get a job killed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq.schemes import check_scheme_name

GB = 1024**3
# Peak RSS of `mobq export` over the model's bf16 checkpoint size, and a fixed part for
# Python, torch, ExecuTorch and transformers. Measured: qwen3-0.6b 8da4w ctx 512 peaked at
# 5.88 GB for a 1.50 GB bf16 checkpoint (2026-11-24, before the memory-lean export work).
EXPORT_PEAK_FACTOR = {"quantized": 3.3, "fp32": 4.5}
EXPORT_FIXED_BYTES = int(1.0 * GB)
# Peak RSS of the runtime (mobq bench) over the .pte size.
RUNTIME_FACTOR = 1.5
RUNTIME_FIXED_BYTES = int(0.5 * GB)


@dataclass(frozen=True)
class JobEstimate:
    parameters: int
    checkpoint_bytes: int
    export_peak_bytes: int
    program_bytes: int
    runtime_peak_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "checkpoint_gb": round(self.checkpoint_bytes / GB, 2),
            "export_peak_gb": round(self.export_peak_bytes / GB, 2),
            "program_gb": round(self.program_bytes / GB, 2),
            "runtime_peak_gb": round(self.runtime_peak_bytes / GB, 2),
        }


def decoder_parameters(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    intermediate: int,
    vocab: int,
    tied: bool,
) -> int:
    """Parameters of a llama-like decoder: the one formula (recipes, sweep, manifest)."""
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * intermediate
    return layers * (attention + mlp) + vocab * hidden * (1 if tied else 2)


def parameter_count(architecture: dict[str, Any]) -> int:
    """Parameters of a llama-like decoder from its config.json fields."""
    # Multimodal checkpoints (Gemma-3) keep the decoder's fields under text_config.
    cfg = architecture.get("text_config") or architecture
    hidden = cfg.get("hidden_size", 0)
    heads = cfg.get("num_attention_heads", 1) or 1
    return decoder_parameters(
        hidden=hidden,
        layers=cfg.get("num_hidden_layers", 0),
        heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or hidden // heads,
        intermediate=cfg.get("intermediate_size", 0),
        vocab=cfg.get("vocab_size", 0),
        tied=cfg.get("tie_word_embeddings", architecture.get("tie_word_embeddings", False)),
    )


def params_parameter_count(params: dict[str, Any]) -> int:
    """The same count from ExecuTorch's params.json (exported programs are always untied)."""
    return decoder_parameters(
        hidden=params["dim"],
        layers=params["n_layers"],
        heads=params["n_heads"],
        kv_heads=params["n_kv_heads"],
        head_dim=params["head_dim"],
        intermediate=params["hidden_dim"],
        vocab=params["vocab_size"],
        tied=False,
    )


def program_bytes(parameters: int, scheme: str, embeddings: int) -> int:
    """Approximate .pte size: int4 linears (+ scales), int8 embeddings; fp32 otherwise."""
    if not check_scheme_name(scheme).quantized:
        return parameters * 4
    linear = parameters - embeddings
    return int(linear * (0.5 + 2 / 32) + embeddings * 1.0)


def estimate(architecture: dict[str, Any], scheme: str) -> JobEstimate:
    parameters = parameter_count(architecture)
    cfg = architecture.get("text_config") or architecture
    embeddings = cfg.get("vocab_size", 0) * cfg.get("hidden_size", 0)
    checkpoint = parameters * 2  # bf16
    kind = "quantized" if check_scheme_name(scheme).quantized else "fp32"
    export_peak = int(checkpoint * EXPORT_PEAK_FACTOR[kind]) + EXPORT_FIXED_BYTES
    program = program_bytes(parameters, scheme, embeddings)
    runtime_peak = int(program * RUNTIME_FACTOR) + RUNTIME_FIXED_BYTES
    return JobEstimate(parameters, checkpoint, export_peak, program, runtime_peak)


def architecture_of(model: str) -> dict[str, Any]:
    """config.json fields of a recipe, a local directory, or a hub id's cached snapshot."""
    from mobq.errors import ModelNotFound
    from mobq.recipes import all_recipes, find_recipe_for_hub_id

    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    recipes = all_recipes()
    if model in recipes:
        return dict(recipes[model].architecture)
    recipe = find_recipe_for_hub_id(model)
    if recipe is not None:
        return dict(recipe.architecture)
    raise ModelNotFound(
        f"cannot estimate '{model}': not a recipe, known hub id or directory with config.json"
    )
