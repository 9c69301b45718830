"""verify runs its eager references once over all prompts (one torchao dequantization, not one
per prompt); each prompt's logits must be what a forward of that prompt alone gives."""

from __future__ import annotations

from pathlib import Path

from mobq import verify


def test_one_padded_forward_gives_each_prompts_own_logits(tiny_tied: Path) -> None:
    model = verify.load_reference(tiny_tied)
    prompts = [[5, 17, 3, 42, 8, 9, 11], [7, 2], [30, 31, 32, 33]]  # unequal: padding is used
    batched = verify.batched_reference_logits(model, prompts)
    for ids, got in zip(prompts, batched, strict=True):
        alone = verify.reference_logits(model, ids)
        assert got.shape == alone.shape
        assert verify.sqnr_db(alone, got) > 100  # the same up to the GEMM's summation order
