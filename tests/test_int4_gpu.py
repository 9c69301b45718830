"""tinygemm's packed int4 read back and repacked: the layout discovery, the dense prefill path.

These run on the CPU with its tinygemm kernel (`_weight_int4pack_mm_for_cpu`), whose packing
differs from CUDA's: that discovery finds each layout by itself is the point. The CUDA kernels
are compared in bench/gpu_int4_kernels.py.
"""

from __future__ import annotations

import pytest
import torch

from mobq.server import int4_gpu

GROUP = 32


def _quantized(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 16, (n, k), generator=generator)
    scale = torch.rand(k // GROUP, n, generator=generator) * 0.05 + 0.01
    zero = torch.randn(k // GROUP, n, generator=generator) * 0.02
    return values, scale, zero


def _scale_and_zero(scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return torch.stack([scale, zero], dim=-1).to(torch.bfloat16).contiguous()


def test_layout_is_discovered_and_unpacks_exactly() -> None:
    # The CPU kernel's block of rows depends on the ISA (64 with AVX-512, 32 with AVX2 only):
    # what discovery promises is a layout that gives the packed values back exactly.
    layout = int4_gpu.discover_layout(256, "cpu")
    assert layout is not None and layout.rows > 0 and 192 % layout.rows == 0
    values, _, _ = _quantized(192, 256)
    unpacked = int4_gpu.unpack_tinygemm(int4_gpu.tinygemm_pack(values), layout)
    assert torch.equal(unpacked, values.to(torch.uint8))


def test_dequantized_weight_is_what_tinygemm_multiplies_by() -> None:
    values, scale, zero = _quantized(128, 256)
    packed, sz = int4_gpu.tinygemm_pack(values), _scale_and_zero(scale, zero)
    layout = int4_gpu.discover_layout(256, "cpu")
    assert layout is not None
    dense = int4_gpu.dequantize_tinygemm(packed, sz, GROUP, layout, 128)
    # The identity's rows through tinygemm are the weight's columns.
    eye = torch.eye(256, dtype=torch.bfloat16)
    through_kernel = int4_gpu.tinygemm_mm(eye, packed, GROUP, sz).t()
    assert dense.dtype == torch.bfloat16 and dense.shape == (128, 256)
    torch.testing.assert_close(dense.float(), through_kernel.float(), atol=2e-3, rtol=1e-2)


@pytest.mark.parametrize("rows", [1, 3, int4_gpu.DENSE_MIN_ROWS, 40])
def test_linear_agrees_with_tinygemm_at_every_row_count(rows: int) -> None:
    values, scale, zero = _quantized(128, 256, seed=1)
    packed, sz = int4_gpu.tinygemm_pack(values), _scale_and_zero(scale, zero)
    bias = torch.randn(128)
    linear = int4_gpu.PlainInt4Linear(packed, sz, GROUP, 128, 256, bias=bias)
    assert linear.layout is not None
    x = torch.randn(2, rows, 256)
    reference = int4_gpu.tinygemm_mm(x.reshape(-1, 256).bfloat16(), packed, GROUP, sz)
    reference = reference.float().reshape(2, rows, 128) + bias
    out = linear(x)
    assert out.shape == (2, rows, 128) and out.dtype == x.dtype
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)


def test_without_a_known_layout_every_row_count_stays_on_tinygemm() -> None:
    values, scale, zero = _quantized(64, 128)
    packed, sz = int4_gpu.tinygemm_pack(values), _scale_and_zero(scale, zero)
    linear = int4_gpu.PlainInt4Linear(packed, sz, GROUP, 64, 128, dense_prefill=False)
    assert linear.layout is None
    x = torch.randn(1, 32, 128)
    expected = int4_gpu.tinygemm_mm(x.reshape(-1, 128).bfloat16(), packed, GROUP, sz)
    torch.testing.assert_close(linear(x).reshape(-1, 64), expected.float())


def test_fbgemm_repacking_keeps_the_values_and_their_scales() -> None:
    values, scale, zero = _quantized(64, 128)
    sz = _scale_and_zero(scale, zero)
    weight = int4_gpu.tinygemm_to_fbgemm(
        int4_gpu.tinygemm_pack(values), sz, GROUP, 64, 128, keep_int_values=True
    )
    assert weight.int_values is not None
    assert torch.equal(weight.int_values, (values - 8).to(torch.int8))
    low = weight.qdata.int() & 0xF
    low = torch.where(low > 7, low - 16, low)  # signed nibbles
    assert torch.equal(low, values[:, ::2] - 8)
    assert torch.equal(weight.qdata.int() >> 4, values[:, 1::2] - 8)
    assert torch.equal(weight.scale, sz[..., 0]) and torch.equal(weight.zero, sz[..., 1])
