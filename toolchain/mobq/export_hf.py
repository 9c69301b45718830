"""Stage `export` for `hf` families: transformers' own decoder with a static KV cache -> .pte.

Families whose blocks ExecuTorch's llama Transformer cannot express (Gemma-3: four norms per
layer, GELU-tanh, scaled embeddings, sliding and global layers with two rope bases) are
exported as the transformers module itself, so every quirk is kept by construction. The
cache is transformers' `StaticCache` with every layer as long as the context: sliding layers
keep the full history and their window is applied by the attention mask (positions past the
window are verified), which the runner cannot tell apart. The program takes the same
`forward(tokens, input_pos)` as the llama exports, so ExecuTorch's TextLLMRunner, the apps
and `mobq run/bench/eval` drive both alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mobq import progress
from mobq.errors import CheckpointError
from mobq.export import ExportOptions, ExportResult, constant_methods, lower_to_pte
from mobq.families import family_for_config
from mobq.source import load_config


def _static_cache_decoder_class() -> type[torch.nn.Module]:
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

    class StaticCacheDecoder(TorchExportableModuleWithStaticCache):
        """transformers' exportable static-cache wrapper, called as ExecuTorch's runner calls.

        `attn_options["input_pos"]` is the [1] start position (the llama Transformer's calling
        convention, which the shared lowering traces); the cache's write offset is set from
        it, so one program serves any number of generations. Only the last position's logits
        are computed (the runner samples from them), as the llama exports do.
        """

        def forward(  # type: ignore[override]
            self, tokens: torch.Tensor, attn_options: dict[str, torch.Tensor]
        ) -> torch.Tensor:
            return static_cache_step(self, attn_options["input_pos"], input_ids=tokens)

    return StaticCacheDecoder


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


def load_decoder(model_dir: Path, options: ExportOptions) -> torch.nn.Module:
    """The checkpoint as transformers loads it (torchao tensors stay quantized), wrapped."""
    from mobq.hfmodel import load_causal_lm

    try:
        model = load_causal_lm(model_dir, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{model_dir}: transformers cannot load it: {exc}") from exc
    prepare_for_tracing(model)
    return _static_cache_decoder_class()(model, batch_size=1, max_cache_len=options.ctx)


def params_of(model_dir: Path) -> dict[str, Any]:
    config = load_config(model_dir)
    return family_for_config(config, f"{model_dir}/config.json").model_args(config)


def run(
    model_dir: Path, pte_path: Path, options: ExportOptions, runtime_methods: dict[str, Any]
) -> ExportResult:
    params = params_of(Path(model_dir))
    methods = {
        **constant_methods(params, options, runtime_methods),
        "use_sdpa_with_kv_cache": False,  # transformers' attention, decomposed for XNNPACK
    }
    with progress.task("loading the transformers model with a static KV cache"):
        decoder = load_decoder(Path(model_dir), options)
    return lower_to_pte(decoder, Path(pte_path), options, methods)
