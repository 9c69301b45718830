"""Int4 linears for GPU serving: tinygemm for decoding, a dense matmul for prefill.

torchao's int4 HQQ checkpoints (`tile_packed_to_4d`) run every linear through tinygemm's
`_weight_int4pack_mm`. Measured on an H200 at Qwen3-8B's shapes (bench/gpu_int4_kernels.py),
tinygemm is the fastest kernel there is here for one row (1.6-2.1x bf16 cuBLAS), but at 256
rows it is 20-40x slower than bf16 cuBLAS: prefill ran 0.145 s against bf16's 0.040 s. So
`PlainInt4Linear` keeps the one packed copy and dispatches by row count: few rows go through
tinygemm, many rows dequantize the packed weight to bf16 and use the dense matmul.

tinygemm's layout has no unpack op. `discover_layout` learns it from the packer itself: it
packs probes whose values are digits of each element's index, reads back where every element
landed, and checks the map on random data before anyone relies on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

# Rows at or above which a linear dequantizes and runs dense (prefill); decoding steps have one.
DENSE_MIN_ROWS = 16
INNER_K_TILES = 8  # what torchao's tile_packed_to_4d always uses
_ROW_BLOCK_CANDIDATES = (8, 16, 32, 64)  # CUDA packs 8-row tiles, the CPU kernel 64-row blocks


def tinygemm_pack(values: torch.Tensor, inner_k_tiles: int = INNER_K_TILES) -> torch.Tensor:
    """[n, k] int4 values (0..15) -> tinygemm's packed weight on the values' device."""
    if values.device.type == "cpu":
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(values.int(), inner_k_tiles)
    pairs = ((values[:, ::2].int() << 4) | values[:, 1::2].int()).to(torch.uint8).contiguous()
    return torch.ops.aten._convert_weight_to_int4pack(pairs, inner_k_tiles)


def tinygemm_mm(
    rows: torch.Tensor, packed: torch.Tensor, group_size: int, scale_and_zero: torch.Tensor
) -> torch.Tensor:
    if packed.device.type == "cpu":
        return torch.ops.aten._weight_int4pack_mm_for_cpu(rows, packed, group_size, scale_and_zero)
    return torch.ops.aten._weight_int4pack_mm(rows, packed, group_size, scale_and_zero)


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Every 4-bit field of the packed bytes, low nibble first, as uint8."""
    data = packed.contiguous().view(torch.uint8).reshape(-1)
    return torch.stack([data & 0xF, data >> 4], dim=-1).reshape(-1)


@dataclass(frozen=True)
class TinygemmLayout:
    """Where tinygemm puts each value of a block of `rows` rows of a k-column weight.

    The packed weight is n/rows such blocks one after the other; `slots[r * k + c]` is the
    nibble (within a block) that holds value (r, c).
    """

    rows: int
    k: int
    slots: torch.Tensor


def _probe_slots(rows: int, k: int, device: torch.device) -> torch.Tensor | None:
    """Pack base-16 digits of each element's index; None when they do not read back 1:1."""
    total = rows * k
    index = torch.arange(total, device=device).view(rows, k)
    found = torch.zeros(total, dtype=torch.long, device=device)
    for digit in range(math.ceil(math.log(total, 16))):
        nibbles = _nibbles(tinygemm_pack((index // 16**digit) % 16))
        if nibbles.numel() != total:
            return None
        found += nibbles.long() * 16**digit
    if not torch.equal(torch.sort(found).values, torch.arange(total, device=device)):
        return None
    slots = torch.empty(total, dtype=torch.long, device=device)
    slots[found] = torch.arange(total, device=device)
    return slots


@lru_cache(maxsize=16)
def discover_layout(k: int, device: str) -> TinygemmLayout | None:
    """The smallest row block for which tinygemm's packing is blocks in row order.

    Checked on three blocks of random values; None if no candidate reproduces them (a layout
    this code does not know: callers then keep tinygemm for every row count).
    """
    where = torch.device(device)
    generator = torch.Generator(device=where).manual_seed(0)
    for rows in _ROW_BLOCK_CANDIDATES:
        try:
            slots = _probe_slots(rows, k, where)
        except RuntimeError:  # the packer refuses this row count
            continue
        if slots is None:
            continue
        layout = TinygemmLayout(rows, k, slots)
        values = torch.randint(0, 16, (3 * rows, k), device=where, generator=generator)
        if torch.equal(unpack_tinygemm(tinygemm_pack(values), layout), values.to(torch.uint8)):
            return layout
    return None


def unpack_tinygemm(packed: torch.Tensor, layout: TinygemmLayout) -> torch.Tensor:
    """tinygemm packed weight -> [n, k] uint8 values 0..15 (n as padded when packed)."""
    return _unpack(packed, layout.slots, layout.rows, layout.k)


def _unpack(packed: torch.Tensor, slots: torch.Tensor, rows: int, k: int) -> torch.Tensor:
    blocks = _nibbles(packed).view(-1, rows * k)
    return blocks[:, slots].view(-1, k)


def _dequantize(
    packed: torch.Tensor,
    scale_and_zero: torch.Tensor,
    slots: torch.Tensor,
    rows: int,
    k: int,
    group_size: int,
    out_features: int,
) -> torch.Tensor:
    values = _unpack(packed, slots, rows, k)[:out_features]
    groups = values.view(out_features, -1, group_size).to(torch.bfloat16) - 8
    scale = scale_and_zero[:, :out_features, 0].t().unsqueeze(-1)
    zero = scale_and_zero[:, :out_features, 1].t().unsqueeze(-1)
    return (groups * scale + zero).view(out_features, -1)


@lru_cache(maxsize=1)
def _compiled_dequantize() -> Any:
    """On a GPU, one fused kernel (inductor) instead of a chain of full-size temporaries."""
    return torch.compile(_dequantize, dynamic=False, fullgraph=True)


def dequantize_tinygemm(
    packed: torch.Tensor,
    scale_and_zero: torch.Tensor,
    group_size: int,
    layout: TinygemmLayout,
    out_features: int,
) -> torch.Tensor:
    """bf16 [out_features, k] exactly as tinygemm dequantizes: (q - 8) * scale + zero."""
    function = _compiled_dequantize() if packed.device.type == "cuda" else _dequantize
    return function(
        packed, scale_and_zero, layout.slots, layout.rows, layout.k, group_size, out_features
    )


class PlainInt4Linear(torch.nn.Module):
    """A tinygemm int4 linear over plain tensors, dense matmul for prefill-sized inputs.

    The tinygemm call is the one torchao makes, with the same padding; only the tensor
    subclass (whose flatten/unflatten runs in Python for every call) is gone.
    """

    def __init__(
        self,
        packed: torch.Tensor,
        scale_and_zero: torch.Tensor,
        group_size: int,
        out_features: int,
        in_features: int,
        bias: torch.Tensor | None = None,
        dense_prefill: bool = True,
    ) -> None:
        super().__init__()
        self.register_buffer("qdata", packed)
        self.register_buffer("scale_and_zero", scale_and_zero)
        self.bias = bias
        self.group_size, self.out_features, self.in_features = group_size, out_features, in_features
        self.padded_in = scale_and_zero.shape[0] * group_size
        self.layout = discover_layout(self.padded_in, str(packed.device)) if dense_prefill else None

    @classmethod
    def from_torchao(cls, weight: Any, bias: Any, dense_prefill: bool = True) -> PlainInt4Linear:
        out_features, in_features = weight.shape[-2:]
        return cls(
            weight.qdata,
            weight.scale_and_zero,
            weight.block_size[-1],
            out_features,
            in_features,
            bias,
            dense_prefill,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if self.layout is not None and rows.shape[0] >= DENSE_MIN_ROWS:
            y = torch.nn.functional.linear(rows, self.dense_weight()[:, : self.in_features])
        else:
            if self.padded_in != self.in_features:
                rows = torch.nn.functional.pad(rows, (0, self.padded_in - self.in_features))
            y = tinygemm_mm(rows, self.qdata, self.group_size, self.scale_and_zero)
            y = y[:, : self.out_features]
        y = y.reshape(*x.shape[:-1], self.out_features)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype)

    def dense_weight(self) -> torch.Tensor:
        """The bf16 weight, rebuilt for this call only (the packed copy is the only one kept)."""
        assert self.layout is not None
        return dequantize_tinygemm(
            self.qdata, self.scale_and_zero, self.group_size, self.layout, self.out_features
        )


def use_plain_int4_linears(model: Any, dense_prefill: bool = True) -> int:
    """Swap each tinygemm-packed int4 linear of `model` for a PlainInt4Linear; how many."""
    try:
        from torchao.quantization import Int4TilePackedTo4dTensor
    except ImportError:  # an older torchao without it has nothing to swap
        return 0

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            weight = getattr(child, "weight", None)
            is_linear = isinstance(child, torch.nn.Linear)
            if is_linear and isinstance(weight, Int4TilePackedTo4dTensor):
                if getattr(weight, "act_pre_scale", None) is not None:
                    continue  # AWQ-style pre-scaled weights keep torchao's own path
                setattr(
                    parent, name, PlainInt4Linear.from_torchao(weight, child.bias, dense_prefill)
                )
                swapped += 1
    return swapped


@dataclass
class FbgemmInt4Weight:
    """One linear's int4 weight as FBGEMM's mixed-input GEMMs take it (same values as tinygemm).

    `qdata` [n, k/2] int8 holds two signed nibbles (value - 8) per byte, the even column in the
    low nibble; `scale` and `zero` are [k/group, n] bf16, so w = (q - 8) * scale + zero exactly
    as tinygemm dequantizes. `int_values` ([n, k] int8) is kept only when asked for (checks).
    """

    qdata: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    int_values: torch.Tensor | None = None


def pack_signed_int4(values: torch.Tensor) -> torch.Tensor:
    """[n, k] int8 in -8..7 -> [n, k/2] int8, FBGEMM's nibble order (even column low)."""
    low = torch.bitwise_and(values[:, ::2], 0xF)
    high = torch.bitwise_left_shift(values[:, 1::2], 4)
    return torch.bitwise_or(low, high).to(torch.int8).contiguous()


def tinygemm_to_fbgemm(
    packed: torch.Tensor,
    scale_and_zero: torch.Tensor,
    group_size: int,
    out_features: int,
    in_features: int,
    keep_int_values: bool = False,
) -> FbgemmInt4Weight:
    """Repack a tinygemm weight's int4 values and HQQ scales/zeros for FBGEMM's kernels."""
    layout = discover_layout(scale_and_zero.shape[0] * group_size, str(packed.device))
    if layout is None:
        raise RuntimeError("tinygemm's packed layout could not be read back on this device")
    values = unpack_tinygemm(packed, layout)[:out_features, :in_features].to(torch.int8) - 8
    groups = in_features // group_size
    return FbgemmInt4Weight(
        qdata=pack_signed_int4(values),
        scale=scale_and_zero[:groups, :out_features, 0].contiguous(),
        zero=scale_and_zero[:groups, :out_features, 1].contiguous(),
        int_values=values if keep_int_values else None,
    )


def gemlite_linear(linear: PlainInt4Linear) -> torch.nn.Module:
    """The same int4 values, HQQ scales and zeros as a GemLite (Triton) linear.

    GemLite computes w = q * scale + shift per group ("fma mode"); tinygemm's
    (q - 8) * scale + zero is that with shift = zero - 8 * scale, set exactly after packing.
    """
    try:
        from gemlite import DType, GemLiteLinear
    except ImportError as exc:
        raise ImportError(
            "--int4-kernel gemlite needs the gemlite package (pip install gemlite)"
        ) from exc

    if linear.layout is None:
        raise RuntimeError("tinygemm's packed layout could not be read back on this device")
    n, k, group = linear.out_features, linear.in_features, linear.group_size
    values = unpack_tinygemm(linear.qdata, linear.layout)[:n, :k].contiguous()
    groups = k // group
    scale = linear.scale_and_zero[:groups, :n, 0]
    zero = linear.scale_and_zero[:groups, :n, 1]
    module = GemLiteLinear(
        4,
        group_size=group,
        in_features=k,
        out_features=n,
        input_dtype=DType.BF16,
        output_dtype=DType.BF16,
    )
    module.pack(values, scale.t().contiguous(), torch.zeros_like(scale.t()), bias=linear.bias)
    with torch.no_grad():
        module.zeros.copy_((zero.float() - 8 * scale.float()).to(module.zeros.dtype))
    return module


def use_gemlite_int4_linears(model: Any) -> int:
    """Replace every PlainInt4Linear of `model` by its GemLite equivalent; how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PlainInt4Linear):
                setattr(parent, name, gemlite_linear(child))
                swapped += 1
    return swapped


def load_gemlite_tuning(gpu_name: str) -> str | None:
    """GemLite's shipped kernel configs for this GPU (an H200 takes the H100's: same SM90)."""
    import os

    import gemlite

    root = os.path.join(os.path.dirname(gemlite.__file__), "configs")
    tag = "h100" if "h200" in gpu_name.lower() or "h100" in gpu_name.lower() else None
    path = os.path.join(root, f"{tag}.json") if tag else None
    if path and os.path.isfile(path):
        gemlite.load_config(path)
        return path
    return None
