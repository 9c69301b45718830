"""Quantization follows the model cards exactly, streams, and loads back in transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mobq import quantize
from mobq.errors import InputError
from mobq.schemes import SCHEMES, QuantOptions


@pytest.fixture(scope="module")
def quantized(
    tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory
) -> quantize.QuantizeResult:
    return quantize.quantize_checkpoint(
        tiny_untied, tmp_path_factory.mktemp("q") / "8da4w", SCHEMES["8da4w"]
    )


def _card_quantized(model_dir: Path, options: QuantOptions | None = None) -> torch.nn.Module:
    """What the model card does: quantize_ on the whole fp32 transformers model."""
    from torchao.quantization import quantize_
    from transformers import AutoModelForCausalLM

    from mobq.schemes import MODULE_SCHEMES

    options = options or QuantOptions()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    quantize_(model, MODULE_SCHEMES["8da4w"].torchao_config(options))
    quantize_(
        model,
        MODULE_SCHEMES["int8-weight"].torchao_config(options),
        filter_fn=lambda m, _: isinstance(m, torch.nn.Embedding),
    )
    return model


def test_streamed_checkpoint_loads_in_transformers_and_equals_the_card_recipe(
    quantized: quantize.QuantizeResult, tiny_untied: Path
) -> None:
    from torchao.quantization import IntxUnpackedToInt8Tensor
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(quantized.path), dtype=torch.float32).eval()
    q_proj = loaded.model.layers[0].self_attn.q_proj.weight
    assert isinstance(q_proj, IntxUnpackedToInt8Tensor)
    assert tuple(q_proj.block_size) == (1, 32) and q_proj.target_dtype == torch.int4
    assert isinstance(loaded.model.embed_tokens.weight, IntxUnpackedToInt8Tensor)
    assert isinstance(loaded.lm_head.weight, IntxUnpackedToInt8Tensor)
    tokens = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, _card_quantized(tiny_untied)(tokens).logits)


def test_plan_summary_and_size(quantized: quantize.QuantizeResult) -> None:
    assert quantized.plan_summary == {"embedding:int8-weight": 1, "linear:8da4w": 15}
    assert quantized.bytes_out < quantized.bytes_in / 2
    config = json.loads((quantized.path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"


def test_config_entries_fold_layers_into_patterns(quantized: quantize.QuantizeResult) -> None:
    entries = quantized.quantization_config["quant_type"]["default"]["_data"]["fqn_to_config"]
    assert "re:model\\.layers\\.\\d+\\.self_attn\\.q_proj" in entries
    assert "model.embed_tokens" in entries and "lm_head" in entries


def _modules() -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        "model.embed_tokens": ("embedding", (100, 64)),
        "model.layers.0.mlp.down_proj": ("linear", (64, 96)),
        "model.layers.0.self_attn.q_proj": ("linear", (128, 64)),
        "lm_head": ("linear", (100, 64)),
    }


def test_overrides_apply_first_match_wins() -> None:
    overrides = [
        quantize.Override.parse("lm_head=8da8w"),
        quantize.Override.parse(r"model\.layers\.\d+\.mlp\..*=none"),
    ]
    plan = quantize.make_plan(_modules(), SCHEMES["8da4w"], QuantOptions(), overrides)
    assert plan.modules["lm_head"] == ("linear", "8da8w")
    assert plan.modules["model.layers.0.mlp.down_proj"] == ("linear", "none")
    assert plan.modules["model.layers.0.self_attn.q_proj"] == ("linear", "8da4w")
    assert plan.modules["model.embed_tokens"] == ("embedding", "int8-weight")


def test_group_size_that_does_not_divide_keeps_the_module_float_and_says_why() -> None:
    plan = quantize.make_plan(_modules(), SCHEMES["8da4w"], QuantOptions(group_size=48), [])
    assert plan.modules["model.layers.0.self_attn.q_proj"] == ("linear", "none")
    assert "not divisible by group size 48" in plan.skipped["model.layers.0.self_attn.q_proj"]
    assert plan.modules["model.layers.0.mlp.down_proj"] == ("linear", "8da4w")


def test_override_of_the_wrong_module_kind_is_refused() -> None:
    with pytest.raises(InputError, match=r"8da4w applies to linear only"):
        quantize.make_plan(
            _modules(),
            SCHEMES["8da4w"],
            QuantOptions(),
            [quantize.Override.parse("model.embed_tokens=8da4w")],
        )


@pytest.mark.parametrize("text", ["lm_head", "lm_head=int3", "(=8da8w"])
def test_bad_override_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(InputError):
        quantize.Override.parse(text)


def test_hqq_changes_the_chosen_scales() -> None:
    weight = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    from mobq.schemes import MODULE_SCHEMES

    affine = quantize.quantize_weight(
        "linear", weight, MODULE_SCHEMES["8da4w"].torchao_config(QuantOptions())
    )
    hqq = quantize.quantize_weight(
        "linear", weight, MODULE_SCHEMES["8da4w"].torchao_config(QuantOptions(hqq=True))
    )
    assert not torch.equal(affine.scale, hqq.scale)


def test_torchao_configs_round_trip_through_dicts() -> None:
    from torchao.core.config import config_from_dict, config_to_dict

    from mobq.schemes import MODULE_SCHEMES

    for name in ("8da4w", "8da8w", "int8-weight"):
        config = MODULE_SCHEMES[name].torchao_config(QuantOptions(group_size=64, hqq=True))
        assert config_from_dict(config_to_dict(config)) == config


def test_tied_input_is_refused(tiny_tied: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mobq untie"):
        quantize.quantize_checkpoint(tiny_tied, tmp_path / "q", SCHEMES["8da4w"])
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    ("scheme", "kind", "hqq"),
    [
        ("8da4w", "linear", False),
        ("8da4w", "linear", True),
        ("8da8w", "linear", False),
        ("int8-weight", "embedding", False),
    ],
)
def test_row_chunked_quantization_is_bit_identical(
    monkeypatch: pytest.MonkeyPatch, scheme: str, kind: str, hqq: bool
) -> None:
    """Large weights are quantized in row blocks to bound memory; the result must not change."""
    from mobq.schemes import MODULE_SCHEMES

    weight = torch.randn(70, 64, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    config = MODULE_SCHEMES[scheme].torchao_config(QuantOptions(hqq=hqq))
    whole = quantize._quantize_whole(kind, weight, config, "cpu", torch.float32)
    monkeypatch.setattr(quantize, "ROWS_PER_CHUNK", 16)  # 5 blocks, the last one short
    assert quantize._quantize_by_rows(kind, weight, config, torch.float32) is not None
    chunked = quantize.quantize_weight(kind, weight, config)
    assert type(chunked) is type(whole) and chunked.shape == whole.shape
    assert chunked.block_size == whole.block_size
    for name in whole.tensor_data_names:
        assert torch.equal(getattr(chunked, name), getattr(whole, name)), name


def test_lean_reference_gives_the_same_logits(
    quantized: quantize.QuantizeResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify's eager reference keeps big quantized tables quantized: same logits, less memory."""
    from transformers import AutoModelForCausalLM

    from mobq import verify

    def load() -> torch.nn.Module:
        path = str(quantized.path)
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    plain = load()
    monkeypatch.setattr(verify, "LEAN_ROWS", 8)  # the tiny vocab spans several row blocks
    lean = verify.lean_reference(load())
    patched = [m for m in lean.modules() if "forward" in vars(m)]
    assert {type(m).__name__ for m in patched} == {"Linear"}  # lm_head
    assert type(lean.model.embed_tokens) is verify.LeanEmbedding
    ids = list(range(3, 40))
    expected = verify.reference_logits(plain, ids)
    got = verify.reference_logits(lean, ids)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
