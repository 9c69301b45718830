"""The one lowering: named methods (modules + example inputs) -> an XNNPACK .pte.

Every builder (llama, hf, multimodal) returns a `Program`: its methods and the constant
methods the runner reads. `lower` turns any of them into a .pte in one pass:

1. dynamically quantized linears become XNNPACK delegates first, one template per shape
   (`linears.py`): this is where lowering used to spend O(layers^2);
2. one `torch.export` per method, non-strict where the module allows (ExecuTorch's
   `LLMEdgeManager` exports twice, strict, re-tracing after a transpose pass meant for pt2e);
3. one `to_edge_transform_and_lower`, after a pass that fuses transposes undoing each other
   (the KV cache's, `layout_passes`) and, with extended ops, rewrites that let XNNPACK take
   the norms' means (`delegable_passes`, mobq.pte.delegable), with XNNPACK's general
   partitioner (`extended_ops`, on unless turned off: the model cards' `-X` has none, and then
   nothing is left to partition) minus partitions that are only reshapes;
   XNNPACK's passes run once per distinct partition graph, not once per layer's copy of it,
   and the graph is re-sorted only when a cut breaks its order (`partitions.py`); the
   partitioner's cycle check is bitmasks, not O(nodes²) sets (`grouping.py`);
4. `to_executorch` with the settings `LLMEdgeManager.to_executorch` uses, written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobq import fsutil, progress
from mobq.errors import StageError
from mobq.pte import delegable


@dataclass(frozen=True)
class ExportOptions:
    """What the program is built for; mobq.plan checks ctx and max_seq_len once, up front."""

    ctx: int
    max_seq_len: int | None = None  # prefill chunk; defaults to ctx
    dtype: str = "fp32"
    # XNNPACK's general partitioner: norms, rope, elementwise ops and float linears on XNNPACK
    # (None: on). Off gives the model cards' `-X` program: exported in 0.7-0.84x the time,
    # decoding as fast, prefilling 4-25 % slower in the host runner (bench/extended_ops.py;
    # before the cache's transposes were fused, `-X` decoded 16x slower).
    extended_ops: bool | None = None

    @property
    def seq_len(self) -> int:
        return self.max_seq_len or self.ctx


@dataclass(frozen=True)
class ExportResult:
    pte: Path
    bytes: int
    constant_methods: dict[str, Any]
    lowering: dict[str, Any] = field(default_factory=dict)  # what the lowering did, timed

    def to_dict(self) -> dict[str, Any]:
        return {
            "pte": str(self.pte),
            "bytes": self.bytes,
            "constant_methods": self.constant_methods,
            "lowering": self.lowering,
        }


@dataclass
class Method:
    """One method of the program: the module and how it is called."""

    module: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any] | None = None
    dynamic_shapes: Any = None
    # Non-strict tracing is several times faster; transformers' modules need dynamo's
    # (their mask helpers compile functions non-strict export cannot trace).
    strict: bool = False


@dataclass
class Program:
    """What a builder hands to `lower`: methods by name and the runner's constant methods."""

    methods: dict[str, Method]
    constant_methods: dict[str, Any]
    # XNNPACK's general partitioner when the options leave it open (None: only for float
    # programs). A vision tower's convolutions want it; a quantized decoder's -X does not.
    extended_ops: bool | None = None


def token_dim(options: ExportOptions) -> Any:
    """The dynamic prefill length; ExecuTorch keeps one position of the chunk spare."""
    return torch.export.Dim("token_dim", max=options.seq_len - 1)


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


def lower(program: Program, pte_path: Path, options: ExportOptions) -> ExportResult:
    """`program` -> a .pte at `pte_path`. Takes ownership of the methods' modules."""
    from mobq.runtime import quiet_native_logs

    use_packaged_flatc()
    with quiet_native_logs():  # pytorch_tokenizers prints on import
        from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner
    _quiet_executorch_logging()
    timings: dict[str, float] = {}
    partition_stats: dict[str, int] = {}  # XNNPACK pass-manager runs: reused / transformed
    try:
        with _timed(timings, "linears"):
            delegated = _delegate_linears(program, options)
        with _timed(timings, "export"):
            exported = _export_methods(program.methods)
        program.methods.clear()  # the exported programs hold what is still needed
        extended = _pick(options.extended_ops, program.extended_ops, True)
        # With every quantized linear delegated already, -X's partitioner would find nothing.
        partitioners = (
            [
                delegable.without_view_only_partitions(
                    get_xnnpack_partitioner(dynamic_quant_only_partitioner=False)
                )
            ]
            if extended
            else []
            if delegated
            else [get_xnnpack_partitioner(dynamic_quant_only_partitioner=True)]
        )
        with _timed(timings, "to_edge_and_lower"):
            passes = layout_passes() + (delegable_passes() if extended else [])
            edge = _to_edge_and_lower(
                exported, partitioners, passes, program.constant_methods, partition_stats
            )
        del exported
        with _timed(timings, "serialize"):
            _serialize(edge, Path(pte_path))
    except (RuntimeError, AssertionError, torch._dynamo.exc.Unsupported) as exc:  # type: ignore[attr-defined]
        raise StageError(f"ExecuTorch export failed: {' '.join(str(exc).split())[:300]}") from exc
    summary = {
        "prelowered_linears": delegated,
        "extended_ops": extended,
        "partitions": partition_stats,
        "seconds": timings,
    }
    size = Path(pte_path).stat().st_size
    return ExportResult(Path(pte_path), size, program.constant_methods, summary)


def _pick(*choices: bool | None) -> bool:
    return next(choice for choice in choices if choice is not None)


def runner_constants(
    params: dict[str, Any], options: ExportOptions, runtime: dict[str, Any]
) -> dict[str, Any]:
    """The metadata methods ExecuTorch's runner reads; `runtime` adds bos/eos ids."""
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


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    from mobq import hostinfo

    # What the previous step freed (int8 weights once packed, the eager model once traced)
    # goes back to the OS before this step allocates; glibc would keep it in its arenas.
    hostinfo.release_memory()
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 2)


def _delegate_linears(program: Program, options: ExportOptions) -> int:
    from mobq.pte import linears

    modules = [method.module for method in program.methods.values()]
    return linears.delegate_linears(modules, options.seq_len)


def _export_methods(methods: dict[str, Method]) -> dict[str, Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    exported = {}
    # MATH: the decomposable attention (as LLMEdgeManager exports); no_grad: no training ops
    with (
        progress.task(f"torch.export ({', '.join(methods)})"),
        sdpa_kernel([SDPBackend.MATH]),
        torch.no_grad(),
    ):
        for name, method in methods.items():
            exported[name] = torch.export.export(
                method.module,
                method.args,
                kwargs=method.kwargs,
                dynamic_shapes=method.dynamic_shapes,
                strict=method.strict,
            )
    return exported


def _to_edge_and_lower(
    exported: dict[str, Any],
    partitioners: list[Any],
    transform_passes: list[Any],
    constant_methods: dict[str, Any],
    stats: dict[str, int],
) -> Any:
    from executorch.backends.xnnpack._passes.convert_to_linear import ConvertToLinearPass
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from mobq.pte import grouping, partitions, watch
    from mobq.runtime import quiet_native_logs

    with (
        grouping.linear_grouping(),
        quiet_native_logs(),
        watch.graph_passes(_watched_size(exported), "to edge dialect and XNNPACK"),
        watch.partitions_lowered(),
        partitions.reused_transforms(stats),
        partitions.sorted_only_when_needed(),
        partitions.no_needless_preservation(),
    ):
        edge = to_edge_transform_and_lower(
            exported,
            transform_passes=transform_passes,
            partitioner=partitioners,
            compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
            constant_methods=constant_methods,
        )
        # Linears left outside XNNPACK run as the optimized op_linear, not transpose + mm
        # (LLMEdgeManager.to_executorch does the same).
        return edge.transform([ConvertToLinearPass()])


def layout_passes() -> list[Any]:
    """Edge passes run before partitioning: drop transposes that undo each other.

    ExecuTorch's CustomKVCache returns its [B, S, H, D] cache transposed to [B, H, S, D], and
    SDPACustom transposes it straight back for custom_sdpa. Eager code gets views; the edge
    graph gets two `permute_copy`s of the whole cache per K and V per layer. At Qwen3-4B ctx
    1024 that is ~1.2 GB copied per decoded token, 41.8 of 140.6 ms (bench/decode_profile.py).
    Fusing the pair leaves the cache itself as custom_sdpa's input: values are unchanged.
    """
    from executorch.backends.transforms.fuse_cascaded_transpose_or_permute_ops import (
        FuseCascadedTransposeOrPermuteOps,
    )

    return [FuseCascadedTransposeOrPermuteOps()]


def delegable_passes() -> list[Any]:
    """Rewrites that let XNNPACK's general partitioner take the norms' means and rope's
    unsqueezes (mobq.pte.delegable): fewer portable ops and delegate calls per token."""
    return [delegable.delegable_ops]


def _watched_size(programs: dict[str, Any]) -> int:
    """Graphs this large are the model's own (partitions and templates are far smaller)."""
    return max(100, max(len(p.graph.nodes) for p in programs.values()) // 2)


def _serialize(edge: Any, pte_path: Path) -> None:
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    from mobq.pte import watch

    graphs = {name: edge.exported_program(name) for name in edge.methods}
    with watch.graph_passes(_watched_size(graphs), "serializing the ExecuTorch program"):
        program = edge.to_executorch(
            ExecutorchBackendConfig(
                extract_delegate_segments=True,
                do_quant_fusion_and_const_prop=True,
                memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
                sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),
            )
        )
        with fsutil.atomic_path(pte_path) as tmp, open(tmp, "wb") as handle:
            program.write_to_file(handle)


def _quiet_executorch_logging() -> None:
    """ExecuTorch's builder configures root logging at INFO on import; keep our output readable."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("executorch", "torchao", "root"):
        logging.getLogger(name).setLevel(logging.WARNING)
