"""Stage `export`: ExecuTorch's llama Transformer + converted weights -> an XNNPACK .pte.

KV cache, the custom SDPA-with-KV-cache op, dynamic prefill length and the runtime metadata
(bos/eos ids, lengths) are always on: they are what the stock runner and the apps expect.
Weights quantized by torchao before this stage are lowered as they are (no -qmode here).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobq import fsutil, progress
from mobq.checkpoint import CheckpointReader
from mobq.convert import PARAMS_FILE
from mobq.errors import CheckpointError, InputError, StageError


@dataclass(frozen=True)
class ExportOptions:
    ctx: int
    max_seq_len: int | None = None  # prefill chunk; defaults to ctx
    dtype: str = "fp32"
    xnnpack_extended_ops: bool = True

    def __post_init__(self) -> None:
        if self.ctx <= 0:
            raise InputError(f"--ctx must be a positive number of tokens, got {self.ctx}")
        if self.max_seq_len is not None and not 0 < self.max_seq_len <= self.ctx:
            raise InputError(
                f"--max-seq-len must be in 1..ctx ({self.ctx}), got {self.max_seq_len}"
            )

    @property
    def seq_len(self) -> int:
        return self.max_seq_len or self.ctx


@dataclass(frozen=True)
class ExportResult:
    pte: Path
    bytes: int
    constant_methods: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pte": str(self.pte),
            "bytes": self.bytes,
            "constant_methods": self.constant_methods,
        }


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


def constant_methods(
    params: dict[str, Any], options: ExportOptions, runtime: dict[str, Any]
) -> dict[str, Any]:
    """The metadata methods the ExecuTorch runner reads; `runtime` adds bos/eos ids."""
    return {
        "get_max_seq_len": options.seq_len,
        "get_max_context_len": options.ctx,
        "get_n_layers": params["n_layers"],
        "get_vocab_size": params["vocab_size"],
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": True,
        "enable_dynamic_shape": True,
        **runtime,
    }


def run(
    converted_dir: Path, pte_path: Path, options: ExportOptions, runtime_methods: dict[str, Any]
) -> ExportResult:
    """ExecuTorch's llama Transformer with the converted weights -> a verified-ready .pte."""
    params = json.loads((Path(converted_dir) / PARAMS_FILE).read_text())
    methods = constant_methods(params, options, runtime_methods)
    with progress.task("loading weights into ExecuTorch's llama model"):
        model = _for_runtime(load_eager_model(converted_dir, options))
    return lower_to_pte(model, Path(pte_path), options, methods)


def use_packaged_flatc() -> None:
    """Point ExecuTorch at the `flatc` its wheel ships when nothing else would find one.

    ExecuTorch 1.2.0 (the release for torch 2.11) serializes by running `flatc`, looked up as a
    package resource, then $FLATC_EXECUTABLE, then PATH; its wheel carries the binary under
    executorch/data/bin but not where that lookup goes. 1.5.1 does not need it.
    """
    import importlib.util
    import os
    import shutil

    if os.environ.get("FLATC_EXECUTABLE") or shutil.which("flatc"):
        return
    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return
    packaged = Path(next(iter(spec.submodule_search_locations))) / "data" / "bin" / "flatc"
    if packaged.is_file() and os.access(packaged, os.X_OK):
        os.environ["FLATC_EXECUTABLE"] = str(packaged)


def lower_to_pte(
    model: torch.nn.Module, pte_path: Path, options: ExportOptions, methods: dict[str, Any]
) -> ExportResult:
    """torch.export -> XNNPACK -> .pte for any decoder called as `forward(tokens, input_pos)`.

    `tokens` is [1, n] with n dynamic up to the prefill chunk, `input_pos` the [1] start
    position: the interface ExecuTorch's TextLLMRunner drives. Takes ownership of `model`.
    """
    from mobq.runtime import quiet_native_logs

    use_packaged_flatc()
    with quiet_native_logs():  # pytorch_tokenizers prints on import
        from executorch.extension.llm.export.builder import DType, LLMEdgeManager
        from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner

    _quiet_executorch_logging()
    example = (
        torch.tensor([[2, 3, 4]], dtype=torch.long),
        {"input_pos": torch.tensor([0], dtype=torch.long)},
    )
    # Prefill length is dynamic up to the chunk size; ExecuTorch keeps one position spare.
    dynamic = ({1: torch.export.Dim("token_dim", max=options.seq_len - 1)}, {"input_pos": {0: 1}})
    manager = LLMEdgeManager(
        model=model,
        modelname="mobq",
        max_seq_len=options.seq_len,
        use_kv_cache=True,
        example_inputs=example,
        dtype=DType[options.dtype],
        enable_dynamic_shape=True,
        metadata=methods,
        dynamic_shapes=dynamic,
    )
    del model  # the manager holds it until lowering is done with it
    partitioners = [get_xnnpack_partitioner(dynamic_quant_only_partitioner=True)]
    if options.xnnpack_extended_ops:
        partitioners.append(get_xnnpack_partitioner(dynamic_quant_only_partitioner=False))
    try:
        with progress.task("torch.export"):
            manager.export()
            manager.run_canonical_optimizations()
        with progress.task("lowering to XNNPACK"):
            manager = manager.to_edge_transform_and_lower(partitioners)
        _drop_eager_copies(manager)
        with progress.task("serializing the ExecuTorch program"):
            manager = manager.to_executorch()
            with fsutil.atomic_path(Path(pte_path)) as tmp, open(tmp, "wb") as handle:
                manager.export_program.write_to_file(handle)
    except (RuntimeError, AssertionError, torch._dynamo.exc.Unsupported) as exc:  # type: ignore[attr-defined]
        raise StageError(f"ExecuTorch export failed: {' '.join(str(exc).split())[:300]}") from exc
    return ExportResult(Path(pte_path), Path(pte_path).stat().st_size, methods)


def _drop_eager_copies(manager: Any) -> None:
    """After lowering, XNNPACK holds its own packed weights: let the eager ones go.

    The eager model and the pre-autograd graph keep the converted weights alive; nothing after
    lowering reads them, and freeing them keeps one copy of the weights during serialization.
    """
    from mobq.hostinfo import release_memory

    manager.model = None
    manager.pre_autograd_graph_module = None
    release_memory()


def _quiet_executorch_logging() -> None:
    """ExecuTorch's builder configures root logging at INFO on import; keep our output readable."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("executorch", "torchao", "root"):
        logging.getLogger(name).setLevel(logging.WARNING)
