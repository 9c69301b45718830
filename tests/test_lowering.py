"""The one lowering: pre-lowered linears are XNNPACK's own bytes, and change no logit.

Quantized linears are lowered once per shape and serialized per linear with XNNPACK's pass
manager result reused (mobq.pte.linears). These tests hold that shortcut to the stock path:
the delegate bytes equal what ExecuTorch's own lowering of that linear makes, and a program
lowered that way computes bit-identical logits to one lowered whole-graph.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from mobq import convert, quantize, runtime, untie
from mobq.pte import delegable, export_program, linears, lowering
from mobq.pte.llama import load_eager_model
from mobq.pte.lowering import ExportOptions
from mobq.schemes import SCHEMES
from mobq.verify import pte_step_logits

CTX = 32


@pytest.fixture(scope="module")
def converted_8da4w(tiny_tied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lowering")
    untie.untie_checkpoint(tiny_tied, work / "untied")
    quantize.quantize_checkpoint(work / "untied", work / "quantized", SCHEMES["8da4w"])
    convert.convert_checkpoint(work / "quantized", work / "converted")
    return work / "converted"


def _stock_delegate(linear: torch.nn.Linear, max_rows: int) -> object:
    """The delegate ExecuTorch's own lowering makes of `linear` alone."""
    from executorch.exir import to_edge_transform_and_lower
    from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    rows = torch.export.Dim("rows", min=1, max=max_rows)
    example = torch.zeros(2, linear.in_features)
    exported = torch.export.export(Holder(), (example,), dynamic_shapes=({0: rows},), strict=False)
    edge = to_edge_transform_and_lower(
        exported, partitioner=[get_xnnpack_partitioner(dynamic_quant_only_partitioner=True)]
    )
    (delegate,) = linears._delegates(edge.exported_program().graph_module)
    return delegate


def test_a_template_serializes_another_linear_as_xnnpack_would(converted_8da4w: Path) -> None:
    model = load_eager_model(converted_8da4w, ExportOptions(ctx=CTX))
    first, second = (layer.attention.wq for layer in model.layers[:2])
    key = linears.template_key(first)
    assert key is not None and key == linears.template_key(second)
    assert not torch.equal(first.weight.qdata, second.weight.qdata)

    template = linears.build_templates({key: first}, max_rows=CTX)[key]
    ours = template.lower(second)
    stock = _stock_delegate(second, max_rows=CTX)

    assert ours.processed_bytes == stock.processed_bytes
    ours_data, stock_data = ours.named_data_store_output, stock.named_data_store_output
    assert ours_data.pte_data == stock_data.pte_data  # packed weights, by content hash
    assert [bytes(b) for b in ours_data.buffers] == [bytes(b) for b in stock_data.buffers]
    # The template holds no weights between linears: stride-0 stand-ins only.
    assert all(t.stride() == (0,) * t.dim() for t in template.transformed.state_dict.values())


def _logits(pte: Path) -> list[torch.Tensor]:
    method = runtime.load_program(pte).load_method("forward")
    return pte_step_logits(method, [5, 17, 3, 42, 8, 9], [11, 2, 30])


def test_prelowered_program_computes_what_whole_graph_lowering_does(
    converted_8da4w: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = json.loads((converted_8da4w / "params.json").read_text())
    options = ExportOptions(ctx=CTX, extended_ops=False)
    methods = {"get_bos_id": 0, "get_eos_ids": [1]}

    prelowered = export_program("llama", converted_8da4w, tmp_path / "pre.pte", options, methods)
    assert prelowered.lowering["prelowered_linears"] == 7 * params["n_layers"] + 1

    # The stock path: the dynamic-quant partitioner over the whole graph, as `-X` does.
    monkeypatch.setattr(lowering, "_delegate_linears", lambda program, options: 0)
    whole = export_program("llama", converted_8da4w, tmp_path / "whole.pte", options, methods)
    assert whole.lowering["prelowered_linears"] == 0

    for ours, stock in zip(_logits(prelowered.pte), _logits(whole.pte), strict=True):
        assert torch.equal(ours, stock)


def test_partition_shims_keep_xnnpack_bytes_and_logits(
    converted_8da4w: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extended ops: one pass-manager run per distinct partition graph, no EDGE_DO_NOT_DECOMP
    round trip when nothing needs it, the partitioner's cycle check by bitmasks
    (mobq.pte.grouping), the graph re-sorted only when needed (mobq.pte.partitions). The first
    three must not change a byte of the program; with all four, the layout passes and the
    delegable rewrites (mobq.pte.delegable), the logits must equal stock lowering's bit for
    bit."""
    import contextlib

    from mobq.pte import grouping, partitions

    options = ExportOptions(ctx=CTX, extended_ops=True)
    methods = {"get_bos_id": 0, "get_eos_ids": [1]}
    shimmed = export_program("llama", converted_8da4w, tmp_path / "shims.pte", options, methods)
    stats = shimmed.lowering["partitions"]
    params = json.loads((converted_8da4w / "params.json").read_text())
    assert stats["reused"] >= params["n_layers"] - 1  # later layers' partitions reuse the first's

    # The stock side has no layout pass or rewrite either: the shimmed program's logits prove
    # that fusing the cache's transposes and delegating the norms change no value here
    # (test_layout_passes_* and test_delegable_* prove that they happen).
    monkeypatch.setattr(lowering, "layout_passes", list)
    monkeypatch.setattr(lowering, "delegable_passes", list)
    monkeypatch.setattr(delegable, "without_view_only_partitions", lambda partitioner: partitioner)
    monkeypatch.setattr(partitions, "sorted_only_when_needed", contextlib.nullcontext)
    reused_only = export_program("llama", converted_8da4w, tmp_path / "reuse.pte", options, methods)
    monkeypatch.setattr(partitions, "reused_transforms", lambda stats: contextlib.nullcontext())
    monkeypatch.setattr(partitions, "no_needless_preservation", contextlib.nullcontext)
    monkeypatch.setattr(grouping, "linear_grouping", contextlib.nullcontext)
    stock = export_program("llama", converted_8da4w, tmp_path / "stock.pte", options, methods)
    assert stock.lowering["partitions"] == {}
    assert reused_only.pte.read_bytes() == stock.pte.read_bytes()

    for ours, theirs in zip(_logits(shimmed.pte), _logits(stock.pte), strict=True):
        assert torch.equal(ours, theirs)


def test_graph_signature_ignores_names_but_not_structure() -> None:
    from mobq.pte import partitions

    class Norm(torch.nn.Module):
        def __init__(self, width: int, eps: float) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(width))
            self.eps = eps

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def signature(module: torch.nn.Module, width: int = 8) -> object:
        exported = torch.export.export(module, (torch.randn(2, width),), strict=False)
        return partitions.graph_signature(exported)

    assert signature(Norm(8, 1e-6)) == signature(Norm(8, 1e-6))  # other weights, same graph
    assert signature(Norm(8, 1e-6)) != signature(Norm(8, 1e-5))  # a literal differs
    assert signature(Norm(16, 1e-6), width=16) != signature(Norm(8, 1e-6))  # shapes differ


def test_sorted_only_when_needed_resorts_a_broken_order() -> None:
    from executorch.exir import lowered_backend_module

    from mobq.pte import partitions

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_function(torch.relu, (x,))
    z = graph.call_function(torch.neg, (y,))
    w = graph.call_function(torch.abs, (x,))  # independent of y and z: stays where it is
    out = graph.output((z, w))
    module = torch.fx.GraphModule(torch.nn.Module(), graph)
    with partitions.sorted_only_when_needed():
        order = list(module.graph.nodes)
        lowered_backend_module.legalize_graph(module)
        assert list(module.graph.nodes) == order  # already in order: left as it is
        y.prepend(z)  # z before the node it reads, as a partition cut can leave a reader
        assert not partitions.in_topological_order(module.graph)
        lowered_backend_module.legalize_graph(module)
        # Repaired in place: z moved right after y, the rest kept its order.
        assert list(module.graph.nodes) == [x, y, z, w, out]
        assert module.graph is graph


def _sdpa_inputs(edge_program: object) -> list[tuple[str, str]]:
    """Each custom_sdpa's key and value producers, by target name."""
    graph = edge_program.exported_program().graph  # type: ignore[attr-defined]
    calls = [n for n in graph.nodes if "custom_sdpa" in str(n.target)]
    assert calls, "the program has no custom_sdpa"
    return [(str(n.args[1].target), str(n.args[2].target)) for n in calls]


def test_layout_passes_hand_custom_sdpa_the_cache_itself(converted_8da4w: Path) -> None:
    """ExecuTorch's CustomKVCache transposes its cache out and SDPACustom transposes it back:
    two whole-cache copies per K and V per layer per token until lowering.layout_passes."""
    from executorch.exir import EdgeCompileConfig, to_edge

    from mobq.pte import llama

    program = llama.build(converted_8da4w, ExportOptions(ctx=CTX), {"get_bos_id": 0})
    exported = lowering._export_methods(program.methods)["forward"]
    edge = to_edge(exported, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    params = json.loads((converted_8da4w / "params.json").read_text())

    before = _sdpa_inputs(edge)
    assert len(before) == params["n_layers"]
    assert all("permute_copy" in key and "permute_copy" in value for key, value in before)
    after = _sdpa_inputs(edge.transform(lowering.layout_passes()))
    assert after == [("<built-in function getitem>",) * 2] * params["n_layers"]


def _kernels(pte: Path) -> Counter[str]:
    """How often `forward` calls each portable kernel, and its delegates ("DELEGATE")."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    plan = deserialize_pte_binary(pte.read_bytes()).program.execution_plan[0]
    calls: Counter[str] = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            kind = type(instruction.instr_args).__name__
            if kind == "KernelCall":
                calls[plan.operators[instruction.instr_args.op_index].name] += 1
            elif kind == "DelegateCall":
                calls["DELEGATE"] += 1
    return calls


def test_delegable_rewrites_leave_norms_and_rope_tables_to_xnnpack(
    converted_8da4w: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Norm means, rope's cos/sin unsqueezes and a copy per q and k used to run as portable
    kernels between delegates, and the attention output's reshape as a delegate of its own."""
    options = ExportOptions(ctx=CTX, extended_ops=True)
    methods = {"get_bos_id": 0, "get_eos_ids": [1]}
    layers = json.loads((converted_8da4w / "params.json").read_text())["n_layers"]
    ours = _kernels(
        export_program("llama", converted_8da4w, tmp_path / "a.pte", options, methods).pte
    )
    monkeypatch.setattr(lowering, "delegable_passes", list)
    monkeypatch.setattr(delegable, "without_view_only_partitions", lambda partitioner: partitioner)
    stock = _kernels(
        export_program("llama", converted_8da4w, tmp_path / "b.pte", options, methods).pte
    )

    portable = ("aten::mean", "aten::unsqueeze_copy", "aten::alias_copy")
    assert all(stock[name] >= layers for name in portable)
    assert not any(ours[name] for name in portable)
    # Per layer: the norms and the lone reshape no longer cut XNNPACK's partitions.
    assert stock["DELEGATE"] - ours["DELEGATE"] >= 2 * layers
