"""The llama builder: ExecuTorch's llama Transformer with the converted weights.

KV cache, the custom SDPA-with-KV-cache op, dynamic prefill length and the runtime metadata
(bos/eos ids, lengths) are always on: they are what the stock runner and the apps expect.
Weights quantized by torchao before this stage are lowered as they are (no -qmode here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mobq import progress
from mobq.checkpoint import PARAMS_FILE, CheckpointReader
from mobq.errors import CheckpointError, InputError
from mobq.pte.lowering import ExportOptions, Method, Program, runner_constants, token_dim


def model_args(params: dict[str, Any], options: ExportOptions) -> Any:
    from executorch.examples.models.llama.model_args import ModelArgs

    check_longrope_ctx(params, options)
    return ModelArgs(
        **params,
        max_seq_len=options.seq_len,
        max_context_len=options.ctx,
        max_batch_size=1,
        use_kv_cache=True,
        use_sdpa_with_kv_cache_op=True,
        enable_dynamic_shape=True,
    )


def check_longrope_ctx(params: dict[str, Any], options: ExportOptions) -> None:
    """LongRoPE: ExecuTorch bakes the factor set for the whole cache into the program.

    Past original_max_position_embeddings it would use long_factor at every position, while
    transformers uses short_factor until a sequence actually grows that long.
    """
    original = params.get("original_max_position_embeddings")
    if params.get("rope_scaling_long_factor") is None or original is None:
        return
    if options.ctx > original and params["rope_scaling_long_factor"] != params.get(
        "rope_scaling_short_factor"
    ):
        raise InputError(
            f"--ctx {options.ctx} exceeds this model's LongRoPE switch point "
            f"(original_max_position_embeddings {original}): the program would rotate short "
            f"prompts with long_factor, unlike the model; use --ctx {original} or less"
        )


def load_eager_model(converted_dir: Path, options: ExportOptions) -> torch.nn.Module:
    """ExecuTorch's llama Transformer with the converted weights assigned (no fp32 copy)."""
    from executorch.examples.models.llama.llama_transformer import construct_transformer

    params = json.loads((Path(converted_dir) / PARAMS_FILE).read_text())
    args = model_args(params, options)
    with torch.device("meta"):
        model = construct_transformer(args)
    with CheckpointReader(converted_dir) as reader:
        state = {name: reader.get(name) for name in reader.names}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    del state
    missing = [m for m in missing if not m.endswith(("k_cache", "v_cache"))]
    if missing or unexpected:
        raise CheckpointError(
            f"{converted_dir}: tensors do not match ExecuTorch's model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model = model.to(dtype=_torch_dtype(options.dtype))
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def _torch_dtype(name: str) -> torch.dtype:
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise InputError(f"unknown dtype '{name}'; choose one of {', '.join(table)}")
    return table[name]


def _for_runtime(model: torch.nn.Module) -> torch.nn.Module:
    """Swap in the fused SDPA-with-KV-cache op and its cache, as the stock export does."""
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        replace_kv_cache_with_custom_kv_cache,
    )
    from executorch.examples.models.llama.source_transformation.sdpa import (
        replace_sdpa_with_custom_op,
    )

    return replace_kv_cache_with_custom_kv_cache(replace_sdpa_with_custom_op(model))


def build(model_dir: Path, options: ExportOptions, runtime_methods: dict[str, Any]) -> Program:
    """`forward(tokens [1, n], {"input_pos": [1]})`: the interface TextLLMRunner drives."""
    params = json.loads((Path(model_dir) / PARAMS_FILE).read_text())
    constants = runner_constants(params, options, runtime_methods)
    with progress.task("loading weights into ExecuTorch's llama model"):
        model = _for_runtime(load_eager_model(Path(model_dir), options))
    tokens, start = torch.tensor([[2, 3, 4]], dtype=torch.long), torch.tensor([0])
    forward = Method(
        model,
        (tokens, {"input_pos": start}),
        dynamic_shapes=({1: token_dim(options)}, {"input_pos": {0: 1}}),
    )
    return Program({"forward": forward}, constants)
