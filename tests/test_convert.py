"""Key maps are complete and exact, and the converted model matches transformers eagerly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mobq import convert, untie
from mobq.checkpoint import CheckpointReader
from mobq.errors import CheckpointError, UnsupportedModel
from mobq.families import family_for_config
from mobq.hfmodel import load_config
from mobq.pte.llama import load_eager_model
from mobq.pte.lowering import ExportOptions
from mobq.verify import sqnr_db


@pytest.fixture(scope="module")
def converted_untied(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert.convert_checkpoint(tiny_untied, tmp_path_factory.mktemp("conv") / "untied").path


@pytest.fixture(scope="module")
def converted_tied(tiny_tied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conv")
    untied = untie.untie_checkpoint(tiny_tied, root / "untied").path
    return convert.convert_checkpoint(untied, root / "converted").path


def test_key_map_covers_every_tensor_of_the_checkpoint_exactly(tiny_untied: Path) -> None:
    config = load_config(tiny_untied)
    mapping = convert.key_map(config, family_for_config(config))
    with CheckpointReader(tiny_untied) as reader:
        assert set(reader.names) == set(mapping)


def test_converted_tensors_are_exactly_executorch_model_parameters(converted_untied: Path) -> None:
    model = load_eager_model(converted_untied, ExportOptions(ctx=32))
    expected = {name for name, _ in model.named_parameters()}
    with CheckpointReader(converted_untied) as reader:
        assert set(reader.names) == expected


def test_params_are_derived_from_config_json(converted_untied: Path, tiny_untied: Path) -> None:
    params = json.loads((converted_untied / "params.json").read_text())
    raw = json.loads((tiny_untied / "config.json").read_text())
    assert params["dim"] == raw["hidden_size"]
    assert params["n_layers"] == raw["num_hidden_layers"]
    assert params["n_kv_heads"] == raw["num_key_value_heads"]
    assert params["head_dim"] == raw["head_dim"]
    assert params["hidden_dim"] == raw["intermediate_size"]
    assert params["vocab_size"] == raw["vocab_size"]
    rope_theta = raw.get("rope_theta") or raw["rope_parameters"]["rope_theta"]
    assert params["rope_theta"] == rope_theta
    assert params["use_qk_norm"] and params["qk_norm_before_rope"] and params["use_hf_rope"]


@torch.no_grad()
def _eager_agreement(model_dir: Path, converted: Path) -> list[float]:
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    et_model = load_eager_model(converted, ExportOptions(ctx=64))
    tokens = torch.randint(
        0, reference.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(0)
    )
    expected = reference(tokens).logits[0]
    prefill = et_model(tokens[:, :16], {"input_pos": torch.tensor([0])})[0]
    results = [sqnr_db(expected[15], prefill)]
    for position in range(16, 20):
        step = et_model(
            tokens[:, position : position + 1], {"input_pos": torch.tensor([position])}
        )[0]
        results.append(sqnr_db(expected[position], step))
    return results


def test_untied_model_matches_transformers_through_prefill_and_kv_cache(
    tiny_untied: Path, converted_untied: Path
) -> None:
    assert min(_eager_agreement(tiny_untied, converted_untied)) > 100


def test_tied_model_matches_transformers_after_untie(tiny_tied: Path, converted_tied: Path) -> None:
    assert min(_eager_agreement(tiny_tied, converted_tied)) > 100


def test_missing_tensor_is_named(tiny_untied: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_untied / name).read_bytes())
    tensors = load_file(str(tiny_untied / "model.safetensors"))
    tensors.pop("model.layers.1.mlp.up_proj.weight")
    tensors["model.layers.0.self_attn.extra_proj.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(broken / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"missing tensors.*model\.layers\.1\.mlp\.up_proj\.weight"
    ):
        convert.convert_checkpoint(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tied_checkpoint_is_refused_with_a_hint(tiny_tied: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="mobq untie"):
        convert.convert_checkpoint(tiny_tied, tmp_path / "out")


def test_unsupported_and_non_causal_architectures_are_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    with pytest.raises(UnsupportedModel, match="not a causal language model"):
        family_for_config(SimpleNamespace(architectures=["BertForMaskedLM"], model_type="bert"))
    with pytest.raises(UnsupportedModel, match=r"not supported; supported: .*Qwen3ForCausalLM"):
        family_for_config(SimpleNamespace(architectures=["MambaForCausalLM"], model_type="mamba"))
