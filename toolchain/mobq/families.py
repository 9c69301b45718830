"""Model families: everything that differs between architectures, one mapping each.

A family says which Hugging Face architectures it covers and which exporter lowers it:
- `llama`: ExecuTorch's llama Transformer. The family gives how checkpoint keys map to its
  layout (one templated table, `{L}` standing for the layer index) and how `ModelArgs` derive
  from the model's own config.json.
- `hf`: transformers' own decoder module with a static KV cache (`mobq.pte.hf`), for families
  whose blocks the llama Transformer cannot express; no key map, the weights stay as saved.
Adding a model of a supported family is a recipe file; adding a family is one entry here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mobq.errors import UnsupportedModel

# ExecuTorch llama layout <- Hugging Face layout, shared by the llama-like families.
LLAMA_LIKE_KEYS: dict[str, str] = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "layers.{L}.attention.wq.weight": "model.layers.{L}.self_attn.q_proj.weight",
    "layers.{L}.attention.wk.weight": "model.layers.{L}.self_attn.k_proj.weight",
    "layers.{L}.attention.wv.weight": "model.layers.{L}.self_attn.v_proj.weight",
    "layers.{L}.attention.wo.weight": "model.layers.{L}.self_attn.o_proj.weight",
    "layers.{L}.attention_norm.weight": "model.layers.{L}.input_layernorm.weight",
    "layers.{L}.ffn_norm.weight": "model.layers.{L}.post_attention_layernorm.weight",
    # ExecuTorch's FeedForward is w2(silu(w1(x)) * w3(x)): w1 is the gate, w3 the up projection.
    "layers.{L}.feed_forward.w1.weight": "model.layers.{L}.mlp.gate_proj.weight",
    "layers.{L}.feed_forward.w2.weight": "model.layers.{L}.mlp.down_proj.weight",
    "layers.{L}.feed_forward.w3.weight": "model.layers.{L}.mlp.up_proj.weight",
}

QKV_BIAS_KEYS: dict[str, str] = {
    "layers.{L}.attention.wq.bias": "model.layers.{L}.self_attn.q_proj.bias",
    "layers.{L}.attention.wk.bias": "model.layers.{L}.self_attn.k_proj.bias",
    "layers.{L}.attention.wv.bias": "model.layers.{L}.self_attn.v_proj.bias",
}

QK_NORM_KEYS: dict[str, str] = {
    "layers.{L}.attention.q_norm_fn.weight": "model.layers.{L}.self_attn.q_norm.weight",
    "layers.{L}.attention.k_norm_fn.weight": "model.layers.{L}.self_attn.k_norm.weight",
}


@dataclass(frozen=True)
class Split:
    """One Hugging Face tensor holding several ExecuTorch tensors stacked along dim 0.

    Phi-3's `qkv_proj` is [q; k; v] and its `gate_up_proj` is [gate; up]. Cutting rows is exact
    for torchao's row-wise quantized tensors too (scales are per output row), so the split can
    run after quantization.
    """

    source: str  # HF template
    targets: tuple[str, ...]  # ExecuTorch templates, in row order
    rows: Callable[[Mapping[str, Any]], tuple[int, ...]]  # row counts, from the derived params


@dataclass(frozen=True)
class Family:
    name: str
    architectures: tuple[str, ...]
    keys: Mapping[str, str]
    model_args: Callable[[Any], dict[str, Any]]
    # Keys that exist only under a config condition (e.g. qkv bias), added by `keys_for`.
    conditional_keys: Callable[[Any], Mapping[str, str]] = field(default=lambda cfg: {})
    splits: tuple[Split, ...] = ()
    embedding_key: str = "model.embed_tokens.weight"
    lm_head_key: str = "lm_head.weight"
    # Why mobq cannot export this family yet (None: it can).
    blocked: str | None = None
    exporter: str = "llama"  # "llama" (ExecuTorch's llama Transformer) or "hf" (mobq.pte.hf)
    # Multimodal checkpoints: the text decoder's key prefixes -> a *ForCausalLM's, and that
    # class. A text-only export keeps these tensors and drops the vision tower and projector.
    text_decoder_prefixes: Mapping[str, str] = field(default_factory=dict)
    text_decoder_architecture: str | None = None
    # Multimodal exports keep every tensor, under transformers 5's names (hub checkpoints use
    # older ones): old prefix -> new. The embedding and lm_head then live at these keys.
    multimodal_prefixes: Mapping[str, str] = field(default_factory=dict)
    multimodal_embedding_key: str = "model.language_model.embed_tokens.weight"

    def keys_for(self, config: Any) -> dict[str, str]:
        return {**self.keys, **self.conditional_keys(config)}


def text_config(config: Any) -> Any:
    """The language-model part of a config (multimodal checkpoints nest it)."""
    return getattr(config, "text_config", None) or config


def rope_parameters(config: Any) -> dict[str, Any]:
    """transformers 5 keeps rope settings in `rope_parameters`; older configs at top level."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "rope_theta" not in params and getattr(config, "rope_theta", None) is not None:
        params["rope_theta"] = config.rope_theta
    scaling = getattr(config, "rope_scaling", None)
    if scaling and "rope_type" not in params:
        params.update(scaling)
    params.setdefault("rope_type", "default")
    return params


def head_dim_of(cfg: Any) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def partial_rotary_factor(cfg: Any) -> float:
    rope = rope_parameters(cfg)
    return float(rope.get("partial_rotary_factor") or getattr(cfg, "partial_rotary_factor", 1.0))


def common_model_args(config: Any) -> dict[str, Any]:
    """ModelArgs fields every llama-like decoder derives the same way."""
    cfg = text_config(config)
    n_heads = cfg.num_attention_heads
    head_dim = head_dim_of(cfg)
    rope = rope_parameters(cfg)
    partial = partial_rotary_factor(cfg)
    extra = {"partial_rotary_factor": partial} if partial != 1.0 else {}
    return {
        "dim": cfg.hidden_size,
        "n_layers": cfg.num_hidden_layers,
        "n_heads": n_heads,
        "n_kv_heads": getattr(cfg, "num_key_value_heads", None) or n_heads,
        "head_dim": head_dim,
        "hidden_dim": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
        "norm_eps": cfg.rms_norm_eps,
        "rope_theta": float(rope["rope_theta"]),
        # HF checkpoints rotate halves, not interleaved pairs: no q/k weight permutation needed.
        "use_hf_rope": True,
        "attention_qkv_bias": bool(getattr(cfg, "attention_bias", False)),
        **extra,
    }


def _require_default_rope(config: Any, family: str) -> None:
    rope_type = rope_parameters(text_config(config))["rope_type"]
    if rope_type != "default":
        raise UnsupportedModel(
            f"{family} checkpoint uses rope_type '{rope_type}', which mobq cannot export yet; "
            "remove rope_scaling from config.json or use a checkpoint without it"
        )


def _require_silu(config: Any, family: str) -> None:
    act = getattr(text_config(config), "hidden_act", "silu")
    if act != "silu":
        raise UnsupportedModel(
            f"{family} checkpoint uses hidden_act '{act}'; only silu is supported"
        )


def llama3_rope_divisors(rope: Mapping[str, Any], rotary_dim: int) -> list[float]:
    """Llama 3.1's frequency scaling as one divisor per rotary frequency.

    Same formula as transformers' `_compute_llama3_parameters`: high frequencies stay,
    low ones are divided by `factor`, the band between is blended smoothly.
    """
    factor = float(rope["factor"])
    low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
    old_context = float(rope["original_max_position_embeddings"])
    theta = float(rope["rope_theta"])
    divisors = []
    for index in range(0, rotary_dim, 2):
        wavelen = 2 * math.pi * theta ** (index / rotary_dim)
        if wavelen < old_context / high:
            divisors.append(1.0)
        elif wavelen > old_context / low:
            divisors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return divisors


def longrope_attention_factor(cfg: Any, rope: Mapping[str, Any]) -> float:
    """The cos/sin scale transformers applies for LongRoPE (`_compute_longrope_parameters`)."""
    if rope.get("attention_factor") is not None:
        return float(rope["attention_factor"])
    original = _original_max_positions(cfg, rope)
    factor = rope.get("factor") or cfg.max_position_embeddings / original
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))


def _original_max_positions(cfg: Any, rope: Mapping[str, Any]) -> int:
    value = rope.get("original_max_position_embeddings") or getattr(
        cfg, "original_max_position_embeddings", None
    )
    if not value:
        raise UnsupportedModel(
            "rope scaling needs original_max_position_embeddings, which config.json lacks"
        )
    return int(value)


def rope_scaling_args(config: Any, family: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """ModelArgs for the config's rope scaling, through ExecuTorch's HF rope path.

    ExecuTorch's `hf_precompute_freqs_cis` divides each inverse frequency by a LongRoPE factor
    and scales cos/sin by an attention factor. LongRoPE maps onto it directly; Llama 3's
    scaling is also a per-frequency division, so it is expressed as the same factor list
    (`use_scaled_rope` exists only on the interleaved rope path, which would need permuted
    q/k weights and hard-codes the original 8192-token context).
    """
    cfg = text_config(config)
    rope = rope_parameters(cfg)
    kind = rope["rope_type"]
    if kind not in allowed:
        raise UnsupportedModel(
            f"{family} checkpoint uses rope_type '{kind}', which mobq cannot export "
            f"(supported for {family}: {', '.join(allowed)})"
        )
    rotary_dim = int(head_dim_of(cfg) * partial_rotary_factor(cfg))
    if kind == "llama3":
        divisors = llama3_rope_divisors(rope, rotary_dim)
        return {
            "rope_scaling_short_factor": divisors,
            "rope_scaling_long_factor": divisors,
            "rope_scaling_attention_factor": 1.0,
        }
    if kind == "longrope":
        short, long = list(rope["short_factor"]), list(rope["long_factor"])
        if len(short) != rotary_dim // 2 or len(long) != rotary_dim // 2:
            raise UnsupportedModel(
                f"{family} LongRoPE factors have {len(short)}/{len(long)} entries; the rotary "
                f"dimension {rotary_dim} needs {rotary_dim // 2}"
            )
        return {
            "rope_scaling_short_factor": [float(v) for v in short],
            "rope_scaling_long_factor": [float(v) for v in long],
            # ExecuTorch picks long_factor when the context exceeds this, as transformers does.
            "original_max_position_embeddings": _original_max_positions(cfg, rope),
            "max_position_embeddings": int(cfg.max_position_embeddings),
            "rope_scaling_attention_factor": longrope_attention_factor(cfg, rope),
        }
    return {}


def _require_full_attention(config: Any, family: str) -> None:
    """A sliding window shorter than the model's context would need a windowed KV cache."""
    cfg = text_config(config)
    window = getattr(cfg, "sliding_window", None)
    if window and window < cfg.max_position_embeddings:
        raise UnsupportedModel(
            f"{family} checkpoint limits attention to a sliding window of {window} tokens; "
            "mobq exports full causal attention only"
        )


def llama_model_args(config: Any) -> dict[str, Any]:
    _require_silu(config, "llama")
    cfg = text_config(config)
    if getattr(cfg, "mlp_bias", False):
        raise UnsupportedModel("llama checkpoint has mlp_bias; ExecuTorch's FeedForward has none")
    return {
        **common_model_args(config),
        **rope_scaling_args(config, "llama", ("default", "llama3")),
    }


def phi3_model_args(config: Any) -> dict[str, Any]:
    _require_silu(config, "phi3")
    _require_full_attention(config, "phi3")
    return {
        **common_model_args(config),
        **rope_scaling_args(config, "phi3", ("default", "longrope")),
        "attention_qkv_bias": False,  # Phi-3's fused qkv_proj never has a bias
    }


def qwen3_model_args(config: Any) -> dict[str, Any]:
    _require_default_rope(config, "qwen3")
    _require_silu(config, "qwen3")
    cfg = text_config(config)
    if getattr(cfg, "use_sliding_window", False):
        raise UnsupportedModel(
            "qwen3 checkpoint enables use_sliding_window; mobq exports full attention only"
        )
    return {**common_model_args(config), "use_qk_norm": True, "qk_norm_before_rope": True}


def _qkv_bias(config: Any) -> Mapping[str, str]:
    return QKV_BIAS_KEYS if getattr(text_config(config), "attention_bias", False) else {}


_FUSED = (".wq.weight", ".wk.weight", ".wv.weight", ".w1.weight", ".w3.weight")
PHI3_KEYS = {et: hf for et, hf in LLAMA_LIKE_KEYS.items() if not et.endswith(_FUSED)}
PHI3_SPLITS = (
    Split(
        "model.layers.{L}.self_attn.qkv_proj.weight",
        (
            "layers.{L}.attention.wq.weight",
            "layers.{L}.attention.wk.weight",
            "layers.{L}.attention.wv.weight",
        ),
        lambda p: (
            p["n_heads"] * p["head_dim"],
            p["n_kv_heads"] * p["head_dim"],
            p["n_kv_heads"] * p["head_dim"],
        ),
    ),
    # Phi3MLP: gate, up = gate_up_proj(x).chunk(2): the gate rows come first.
    Split(
        "model.layers.{L}.mlp.gate_up_proj.weight",
        ("layers.{L}.feed_forward.w1.weight", "layers.{L}.feed_forward.w3.weight"),
        lambda p: (p["hidden_dim"], p["hidden_dim"]),
    ),
)


def summary_model_args(config: Any) -> dict[str, Any]:
    """The sizes an `hf`-exported family records in the manifest (no ModelArgs are built)."""
    cfg = text_config(config)
    n_heads = cfg.num_attention_heads
    return {
        "dim": cfg.hidden_size,
        "n_layers": cfg.num_hidden_layers,
        "n_heads": n_heads,
        "n_kv_heads": getattr(cfg, "num_key_value_heads", None) or n_heads,
        "head_dim": head_dim_of(cfg),
        "hidden_dim": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
    }


def gemma3_model_args(config: Any) -> dict[str, Any]:
    """Gemma-3 runs as transformers' own module: its quirks (four norms per layer with the +1
    offset, q/k norms, GELU-tanh, sqrt(hidden) embedding scale, query_pre_attn_scalar, sliding
    and global layers with two rope bases) are kept by construction. Recorded for the manifest.
    """
    cfg = text_config(config)
    layer_types = list(getattr(cfg, "layer_types", None) or [])
    return {
        **summary_model_args(config),
        "sliding_window": getattr(cfg, "sliding_window", None),
        "sliding_layers": sum(kind == "sliding_attention" for kind in layer_types),
        "rope": rope_parameters(cfg),
        "query_pre_attn_scalar": getattr(cfg, "query_pre_attn_scalar", None),
        "hidden_activation": getattr(cfg, "hidden_activation", None),
    }


# Gemma3ForConditionalGeneration, as transformers 5 saves it and as the hub checkpoints are.
GEMMA3_TEXT_PREFIXES = {
    "model.language_model.": "model.",
    "language_model.model.": "model.",
    "language_model.lm_head.": "lm_head.",
    "lm_head.": "lm_head.",
}
GEMMA3_MULTIMODAL_PREFIXES = {
    "model.": "model.",
    "lm_head.": "lm_head.",
    "language_model.model.": "model.language_model.",
    "language_model.lm_head.": "lm_head.",
    "vision_tower.": "model.vision_tower.",
    "multi_modal_projector.": "model.multi_modal_projector.",
}


FAMILIES: dict[str, Family] = {
    "qwen3": Family(
        name="qwen3",
        architectures=("Qwen3ForCausalLM",),
        keys={**LLAMA_LIKE_KEYS, **QK_NORM_KEYS},
        model_args=qwen3_model_args,
        conditional_keys=_qkv_bias,
    ),
    "llama": Family(
        name="llama",
        architectures=("LlamaForCausalLM",),
        keys=LLAMA_LIKE_KEYS,
        model_args=llama_model_args,
        conditional_keys=_qkv_bias,
    ),
    "phi3": Family(
        name="phi3",
        architectures=("Phi3ForCausalLM",),
        keys=PHI3_KEYS,
        model_args=phi3_model_args,
        splits=PHI3_SPLITS,
    ),
    "gemma3": Family(
        name="gemma3",
        architectures=("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"),
        keys={},
        model_args=gemma3_model_args,
        exporter="hf",
        text_decoder_prefixes=GEMMA3_TEXT_PREFIXES,
        text_decoder_architecture="Gemma3ForCausalLM",
        multimodal_prefixes=GEMMA3_MULTIMODAL_PREFIXES,
    ),
}

CAUSAL_LM_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")


def supported_architectures() -> list[str]:
    return sorted(
        arch
        for family in FAMILIES.values()
        if family.blocked is None
        for arch in family.architectures
    )


def family_for_config(config: Any, where: str = "config.json") -> Family:
    architectures = list(getattr(config, "architectures", None) or [])
    for family in FAMILIES.values():
        if any(arch in family.architectures for arch in architectures):
            if family.blocked is not None:
                raise UnsupportedModel(
                    f"{where}: {', '.join(architectures)} ({family.name}) cannot be exported "
                    f"yet. {family.blocked}. Supported: {', '.join(supported_architectures())}"
                )
            # Derive ModelArgs now: a quirk mobq cannot export fails before any stage runs.
            family.model_args(config)
            return family
    shown = ", ".join(architectures) or f"model_type={getattr(config, 'model_type', '?')}"
    if architectures and not any(a.endswith(CAUSAL_LM_SUFFIXES) for a in architectures):
        raise UnsupportedModel(
            f"{where}: {shown} is not a causal language model; mobq exports text generators "
            f"({', '.join(supported_architectures())})"
        )
    raise UnsupportedModel(
        f"{where}: architecture {shown} is not supported; supported: "
        f"{', '.join(supported_architectures())}"
    )


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise UnsupportedModel(f"unknown family '{name}'; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


_LAYER = re.compile(r"\{L\}")


def expand_keys(templates: Mapping[str, str], n_layers: int) -> dict[str, str]:
    """Expand `{L}` templates into concrete ExecuTorch-name -> HF-name pairs."""
    out: dict[str, str] = {}
    for et_name, hf_name in templates.items():
        if "{L}" in et_name:
            for layer in range(n_layers):
                out[_LAYER.sub(str(layer), et_name)] = _LAYER.sub(str(layer), hf_name)
        else:
            out[et_name] = hf_name
    return out
