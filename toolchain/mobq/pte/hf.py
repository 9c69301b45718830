"""The `hf` builder: transformers' own decoder with a static KV cache -> .pte.

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
from mobq.families import family_for_config
from mobq.hfmodel import load_config
from mobq.pte.lowering import ExportOptions, Method, Program, runner_constants, token_dim
from mobq.pte.static_cache import prepare_for_tracing, static_cache_step


def _static_cache_decoder_class() -> type[torch.nn.Module]:
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

    class StaticCacheDecoder(TorchExportableModuleWithStaticCache):
        """transformers' exportable static-cache wrapper, called as ExecuTorch's runner calls.

        `attn_options["input_pos"]` is the [1] start position (the llama Transformer's calling
        convention); the cache's write offset is set from
        it, so one program serves any number of generations. Only the last position's logits
        are computed (the runner samples from them), as the llama exports do.
        """

        def forward(  # type: ignore[override]
            self, tokens: torch.Tensor, attn_options: dict[str, torch.Tensor]
        ) -> torch.Tensor:
            return static_cache_step(self, attn_options["input_pos"], input_ids=tokens)

    return StaticCacheDecoder


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


def build(model_dir: Path, options: ExportOptions, runtime_methods: dict[str, Any]) -> Program:
    """`forward(tokens [1, n], {"input_pos": [1]})`, as the llama programs are called."""
    params = params_of(Path(model_dir))
    constants = {
        **runner_constants(params, options, runtime_methods),
        "use_sdpa_with_kv_cache": False,  # transformers' attention, decomposed for XNNPACK
    }
    with progress.task("loading the transformers model with a static KV cache"):
        decoder = load_decoder(Path(model_dir), options)
    tokens, start = torch.tensor([[2, 3, 4]], dtype=torch.long), torch.tensor([0])
    forward = Method(
        decoder,
        (tokens, {"input_pos": start}),
        dynamic_shapes=({1: token_dim(options)}, {"input_pos": {0: 1}}),
        strict=True,
    )
    return Program({"forward": forward}, constants)
