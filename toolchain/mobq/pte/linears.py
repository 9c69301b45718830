"""Lower each dynamically quantized linear to its own XNNPACK delegate before the model is traced.

XNNPACK's partitioner puts every dynamically quantized linear (8da4w, 8da8w) in a delegate of
its own anyway, but lowering them inside the whole model costs O(partitions x graph): each
partition re-runs whole-graph work in ExecuTorch's `to_backend` (submodule extraction, program
validation, debug handles, deep copies) and XNNPACK's pass manager re-traces it. Measured on a
2560-wide Qwen3 this was ~37 s per layer at 8 layers and ~70 s at 36 (docs/performance.md).

Here the work is done once per *shape* instead of once per linear:
- one small program holds one linear of each distinct shape; it is exported and lowered through
  ExecuTorch's stock path (`to_edge_transform_and_lower` + the dynamic-quant partitioner), and
  XNNPACK's pass manager runs once on each resulting partition (a template);
- every linear of that shape is then serialized by XNNPACK's own `preprocess` on the template
  with its tensors swapped in, the pass manager's result reused (`_reused_transform`);
- the linear is replaced by a `DelegatedLinear` whose int8 weights are dropped at once, so the
  model that is traced afterwards holds only XNNPACK's packed bytes.
The delegate bytes are those whole-model lowering makes (tests/test_lowering.py checks it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from mobq import hostinfo, progress
from mobq.errors import StageError


class DelegatedLinear(torch.nn.Module):
    """A linear whose computation is an XNNPACK delegate: [..., in] -> [..., out]."""

    def __init__(self, lowered: torch.nn.Module, in_features: int, out_features: int) -> None:
        super().__init__()
        self.lowered = lowered
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # templates are 2-D: one per shape, any rank
        return self.lowered(rows)[0].reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, xnnpack"


def template_key(linear: torch.nn.Module) -> tuple[Any, ...] | None:
    """What a template depends on; None for a module this stage does not pre-lower."""
    from torchao.quantization import IntxUnpackedToInt8Tensor

    if not isinstance(linear, torch.nn.Linear):
        return None
    weight = linear.weight
    if not isinstance(weight, IntxUnpackedToInt8Tensor) or weight.activation_quantization is None:
        return None  # float or weight-only: left to the whole-graph partitioner
    return (
        linear.in_features,
        linear.out_features,
        linear.bias is not None,
        weight.target_dtype,
        tuple(weight.block_size),
        weight.dtype,
        weight.activation_quantization,
    )


def _inner_tensors(linear: torch.nn.Linear) -> dict[str, torch.Tensor]:
    weight = linear.weight
    tensors = {name: getattr(weight, name) for name in weight.tensor_data_names}
    if linear.bias is not None:
        tensors["bias"] = linear.bias
    return tensors


def _storage(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


class _Shaped(torch.nn.Module):
    """What the model graph sees of a delegate when it is traced: only the output's shape.

    Every trace of the model (export, each decomposition) runs each delegate's original program
    on fake tensors; a zeros op here instead of the whole quantize/dequantize chain.
    """

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x.new_zeros(x.shape[0], self.out_features),)  # a delegate returns a tuple


class _OneOfEach(torch.nn.Module):
    """One linear of each shape, each on its own input: one program lowers them all."""

    def __init__(self, linears: list[torch.nn.Linear]) -> None:
        super().__init__()
        self.linears = torch.nn.ModuleList(linears)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: list[torch.Tensor] = []
        for linear, x in zip(self.linears, inputs, strict=True):
            # A float op between two linears keeps the partitioner from fusing independent
            # linears into one partition: each shape must come out as its own delegate.
            rows = x if not outputs else x + outputs[-1].mean()
            outputs.append(linear(rows))
        return tuple(outputs)


@contextlib.contextmanager
def _reused_transform(transformed: Any) -> Iterator[None]:
    """XNNPACK's `preprocess` with its pass manager's result given, not recomputed.

    `XnnpackBackend.preprocess` (executorch/backends/xnnpack/xnnpack_preprocess.py, 1.5.1 and
    1.2.0) runs `XNNPACKPassManager(ep, passes).transform()` and then serializes the graph it
    returns, reading each weight from that program's state_dict. The passes depend only on the
    graph, which is the same for every linear of a template, and they are ~90 % of the call.
    """
    from executorch.backends.xnnpack import xnnpack_preprocess

    class Reuse:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def transform(self) -> Any:
            return transformed

    stock = xnnpack_preprocess.XNNPACKPassManager
    xnnpack_preprocess.XNNPACKPassManager = Reuse  # type: ignore[misc]
    try:
        yield
    finally:
        xnnpack_preprocess.XNNPACKPassManager = stock  # type: ignore[misc]


class _Transformed(Exception):
    """Carries the pass manager's result out of `preprocess` (not an error)."""

    def __init__(self, program: Any) -> None:
        super().__init__("XNNPACK pass manager result")
        self.program = program


def _pass_manager_result(program: Any, compile_specs: list[Any]) -> Any:
    """What XNNPACK's `preprocess` makes of `program` before it serializes anything.

    Stock `preprocess` runs up to its `XNNPACKPassManager(...).transform()` (the same wrapping
    program, the same passes for these compile specs); the result is taken there and the
    serialization, which would pack the weights, is never reached.
    """
    from executorch.backends.xnnpack import xnnpack_preprocess

    stock = xnnpack_preprocess.XNNPACKPassManager

    class Capture(stock):  # type: ignore[misc, valid-type]
        def transform(self) -> Any:
            raise _Transformed(super().transform())

    xnnpack_preprocess.XNNPACKPassManager = Capture  # type: ignore[misc]
    try:
        xnnpack_preprocess.XnnpackBackend.preprocess(program, compile_specs)
    except _Transformed as done:
        return done.program
    finally:
        xnnpack_preprocess.XNNPACKPassManager = stock  # type: ignore[misc]
    raise StageError("XNNPACK's preprocess returned without running its pass manager")


@contextlib.contextmanager
def _partitions_only() -> Iterator[None]:
    """ExecuTorch's lowering with XNNPACK's `preprocess` left out.

    The template program is lowered only to learn how XNNPACK partitions each shape; its
    delegates are never serialized, so packing their weights (the 151,936-row lm_head among
    them) would be wasted work: seconds per shape at full width.
    """
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
    from executorch.exir.backend.backend_details import PreprocessResult

    stock = XnnpackBackend.__dict__["preprocess"]
    XnnpackBackend.preprocess = staticmethod(lambda *_: PreprocessResult(b""))  # type: ignore[method-assign]
    try:
        yield
    finally:
        XnnpackBackend.preprocess = stock  # type: ignore[method-assign]


@dataclass
class _Template:
    """One shape's lowered partition, its XNNPACK-transformed program and where each tensor goes."""

    program: Any  # the partition's ExportedProgram, as `preprocess` receives it
    transformed: Any  # what XNNPACK's pass manager made of it
    compile_specs: list[Any]
    slots: dict[str, str]  # transformed state_dict key -> inner tensor name (qdata, scale, ...)
    shaped: Any  # each delegate's `original_module` (see _Shaped)

    @classmethod
    def from_partition(cls, lowered: Any, linear: torch.nn.Linear, shaped: Any) -> _Template:
        """The partition's program and what XNNPACK's passes make of it.

        (Run here on the partition's own program, whose tensors are the linear's, so each
        tensor's place in the result is known.)
        """
        program, specs = lowered.original_module, list(lowered.compile_specs)
        transformed = _pass_manager_result(program, specs)
        tensors = _inner_tensors(linear)
        by_storage = {_storage(t): name for name, t in tensors.items()}
        slots = {k: by_storage.get(_storage(v), "") for k, v in transformed.state_dict.items()}
        if "" in slots.values() or sorted(slots.values()) != sorted(tensors):
            raise StageError(
                f"pre-lowering a {linear.in_features}x{linear.out_features} linear: XNNPACK's "
                f"program holds tensors other than the linear's own ({sorted(slots)})"
            )
        template = cls(program, transformed, specs, slots, shaped)
        template.clear()
        return template

    def lower(self, linear: torch.nn.Linear) -> torch.nn.Module:
        """XNNPACK's preprocess of this template holding `linear`'s tensors."""
        from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend
        from executorch.exir.lowered_backend_module import LoweredBackendModule

        tensors = _inner_tensors(linear)
        for key, name in self.slots.items():
            self.transformed.state_dict[key] = torch.nn.Parameter(
                tensors[name], requires_grad=False
            )
        try:
            with _reused_transform(self.transformed):
                result = XnnpackBackend.preprocess(self.program, self.compile_specs)
        finally:
            self.clear()
        return LoweredBackendModule(
            edge_program=self.shaped,
            backend_id="XnnpackBackend",
            processed_bytes=result.processed_bytes,
            compile_specs=self.compile_specs,
            named_data_store_output=result.data_store_output,
        )

    def clear(self) -> None:
        """Stand-ins of the right shape and dtype that take no memory (stride 0).

        The packed weights live in each delegate's named data; this keeps the template from
        holding the last linear's int8 weights.
        """
        for state in (self.program.state_dict, self.transformed.state_dict):
            for key, value in list(state.items()):
                stand_in = torch.zeros((), dtype=value.dtype).expand(value.shape)
                state[key] = torch.nn.Parameter(stand_in, requires_grad=False)


def _delegates(graph_module: torch.fx.GraphModule) -> list[Any]:
    from executorch.exir.delegate import executorch_call_delegate

    calls = [n for n in graph_module.graph.nodes if n.op == "call_function"]
    delegates = [n for n in calls if n.target == executorch_call_delegate]
    return [getattr(graph_module, node.args[0].target) for node in delegates]


def _unlifted_once(program: Any) -> Any:
    """`program` whose `.module()` is unlifted once and then reused.

    ExecuTorch traces a delegate call by running `original_module.module()` on fake tensors
    (executorch/exir/delegate.py, `call_delegate_cpu`), and `ExportedProgram.module()` unlifts
    and recompiles a new GraphModule on every call: ~10 ms, for every delegate in every one of
    the ~15 traces of the model. The stand-in holds no state, so one module serves them all.
    """
    unlifted = program.module()
    program.module = lambda: unlifted
    return program


def _owner(program: Any, owner: dict[int, tuple[Any, ...]]) -> tuple[Any, ...]:
    """Which shape's linear a partition's program holds (its tensors are that linear's own)."""
    claimed = {owner.get(_storage(t)) for t in program.state_dict.values()}
    if len(claimed) != 1 or None in claimed:
        raise StageError("pre-lowering quantized linears: a partition does not hold one linear")
    return claimed.pop()  # type: ignore[return-value]


def build_templates(
    representatives: dict[tuple[Any, ...], torch.nn.Linear], max_rows: int
) -> dict[tuple[Any, ...], _Template]:
    """One export and one lowering for every shape at once; a template per shape."""
    from executorch.exir import to_edge_transform_and_lower
    from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner

    keys = list(representatives)
    linears = [representatives[k] for k in keys]
    rows = torch.export.Dim("rows", min=1, max=max(max_rows, 2))
    examples = tuple(torch.zeros(2, lin.in_features, dtype=lin.weight.dtype) for lin in linears)
    exported = torch.export.export(
        _OneOfEach(linears),
        examples,
        dynamic_shapes=(tuple({0: rows} for _ in linears),),  # one *inputs tuple
        strict=False,
    )
    with _partitions_only():
        edge = to_edge_transform_and_lower(
            exported, partitioner=[get_xnnpack_partitioner(dynamic_quant_only_partitioner=True)]
        )
    owner = {
        _storage(t): key for key in keys for t in _inner_tensors(representatives[key]).values()
    }
    templates: dict[tuple[Any, ...], _Template] = {}
    for module in _delegates(edge.exported_program().graph_module):
        key = _owner(module.original_module, owner)
        linear = representatives[key]
        shaped = torch.export.export(
            _Shaped(linear.out_features),
            (examples[keys.index(key)],),
            dynamic_shapes=({0: rows},),
            strict=False,
        )
        templates[key] = _Template.from_partition(module, linear, _unlifted_once(shaped))
    if sorted(templates, key=keys.index) != keys:
        raise StageError(
            f"pre-lowering quantized linears: XNNPACK took {len(templates)} of {len(keys)} shapes whole"
        )
    return templates


def _quantized_linears(modules: Iterable[torch.nn.Module]) -> list[tuple[torch.nn.Module, str]]:
    """(parent, attribute) of each dynamically quantized linear, each place once.

    Methods of one program share submodules, so the same parent can be reached twice.
    """
    found: list[tuple[torch.nn.Module, str]] = []
    seen: set[tuple[int, str]] = set()
    for model in modules:
        for parent in model.modules():
            for name, child in parent.named_children():
                if template_key(child) is not None and (id(parent), name) not in seen:
                    seen.add((id(parent), name))
                    found.append((parent, name))
    return found


def delegate_linears(modules: Iterable[torch.nn.Module], max_rows: int) -> int:
    """Replace every dynamically quantized linear of `modules` with its XNNPACK delegate.

    `max_rows` bounds the rows one call sees (the prefill chunk). Returns how many were
    replaced. Each linear's int8 weights are dropped once packed. A linear shared by several
    modules (methods of one program) is replaced everywhere it is a child.
    """
    # (parent, name) only: holding the linears themselves would keep every int8 weight alive
    found = _quantized_linears(list(modules))
    if not found:
        return 0
    representatives: dict[tuple[Any, ...], torch.nn.Linear] = {}
    for parent, name in found:
        linear = getattr(parent, name)
        representatives.setdefault(template_key(linear), linear)  # type: ignore[arg-type]
    with progress.task(f"lowering {len(representatives)} linear shapes for XNNPACK"):
        templates = build_templates(representatives, max_rows)
    del representatives
    hostinfo.release_memory()  # the template lowering's garbage, before packing begins
    replaced: dict[int, DelegatedLinear] = {}
    with progress.task("packing quantized linears for XNNPACK", total=len(found)) as advance:
        for parent, name in found:
            linear = getattr(parent, name)
            if id(linear) not in replaced:
                lowered = templates[template_key(linear)].lower(linear)  # type: ignore[index]
                replaced[id(linear)] = DelegatedLinear(
                    lowered, linear.in_features, linear.out_features
                )
            setattr(parent, name, replaced[id(linear)])
            del linear
            advance(1)
    return len(replaced)
