"""Model families: everything that differs between architectures, one mapping each.

A family says which Hugging Face architectures it covers, how checkpoint keys map to
ExecuTorch's llama layout (one templated table, `{L}` standing for the layer index), and how
ExecuTorch's `ModelArgs` derive from the model's own config.json. Adding a model of a
supported family is a recipe file; adding a family is one entry here.
"""

from __future__ import annotations

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
class Family:
    name: str
    architectures: tuple[str, ...]
    keys: Mapping[str, str]
    model_args: Callable[[Any], dict[str, Any]]
    # Keys that exist only under a config condition (e.g. qkv bias), added by `keys_for`.
    conditional_keys: Callable[[Any], Mapping[str, str]] = field(default=lambda cfg: {})
    embedding_key: str = "model.embed_tokens.weight"
    lm_head_key: str = "lm_head.weight"

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


def common_model_args(config: Any) -> dict[str, Any]:
    """ModelArgs fields every llama-like decoder derives the same way."""
    cfg = text_config(config)
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    rope = rope_parameters(cfg)
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


FAMILIES: dict[str, Family] = {
    "qwen3": Family(
        name="qwen3",
        architectures=("Qwen3ForCausalLM",),
        keys={**LLAMA_LIKE_KEYS, **QK_NORM_KEYS},
        model_args=qwen3_model_args,
        conditional_keys=_qkv_bias,
    ),
}

CAUSAL_LM_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")


def supported_architectures() -> list[str]:
    return sorted(arch for family in FAMILIES.values() for arch in family.architectures)


def family_for_config(config: Any, where: str = "config.json") -> Family:
    architectures = list(getattr(config, "architectures", None) or [])
    for family in FAMILIES.values():
        if any(arch in family.architectures for arch in architectures):
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
