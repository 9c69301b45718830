"""Static-KV-cache helpers shared by the `hf` and multimodal builders.

transformers' `TorchExportableModuleWithStaticCache` holds a `StaticCache` whose write offset
(`cumulative_length`) is set from the runner's [1] start position at every call, so one
program serves any number of generations.
"""

from __future__ import annotations

from typing import Any

import torch


def set_cache_offset(wrapper: Any, input_pos: torch.Tensor) -> None:
    """Point every static cache layer's write offset at the [1] start position."""
    for layer in wrapper.static_cache.layers:
        layer.cumulative_length.copy_(input_pos[0])


def static_cache_step(
    wrapper: Any, input_pos: torch.Tensor, **inputs: torch.Tensor
) -> torch.Tensor:
    """One step of a TorchExportableModuleWithStaticCache: the last position's logits.

    The cache's write offset is set from the [1] start position, so one program serves any
    number of generations; `inputs` is input_ids (text) or inputs_embeds (multimodal).
    """
    set_cache_offset(wrapper, input_pos)
    return cached_logits(wrapper, None, **inputs)


def cached_logits(wrapper: Any, attention_mask: Any, **inputs: torch.Tensor) -> torch.Tensor:
    """The last position's logits, the cache offset already set (`set_cache_offset`).

    `attention_mask` is None (causal) or masks already built per layer type.
    """
    out = wrapper.model(
        **inputs,
        attention_mask=attention_mask,
        past_key_values=wrapper.static_cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :]


def prepare_for_tracing(model: Any) -> Any:
    """No gradients, no padding_idx, a static cache in the generation config."""
    for param in model.parameters():
        param.requires_grad_(False)
    for module in model.modules():
        # padding_idx only shapes gradients, but it changes the traced aten.embedding call
        # and so hides the int8 embedding from ExecuTorch's quantized-embedding fusion.
        if isinstance(module, torch.nn.Embedding):
            module.padding_idx = None
    model.generation_config.use_cache = True
    model.generation_config.cache_implementation = "static"
    return model
