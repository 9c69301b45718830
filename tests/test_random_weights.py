"""--random-weights: the recipe's architecture, bf16, streamed, offline."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mobq import random_weights
from mobq.checkpoint import CheckpointReader
from mobq.recipes import Recipe, get_recipe


def _small_recipe(tied: bool) -> Recipe:
    architecture = dict(get_recipe("qwen3-8b").architecture)
    architecture.update(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=2048,
        tie_word_embeddings=tied,
    )
    return Recipe(name="small", hub_id="Qwen/Qwen3-8B", family="qwen3", architecture=architecture)


def test_random_checkpoint_matches_the_architecture_in_bf16(tmp_path: Path) -> None:
    recipe = _small_recipe(tied=False)
    out = random_weights.build(recipe, tmp_path / "rw", seed=3)
    from transformers import AutoConfig

    shapes = random_weights.parameter_shapes(AutoConfig.for_model(**recipe.architecture))
    with CheckpointReader(out) as reader:
        assert set(reader.names) == set(shapes)
        for name in reader.names:
            tensor = reader.get(name)
            assert tensor.dtype == torch.bfloat16 and tuple(tensor.shape) == shapes[name]
        embed = reader.get("model.embed_tokens.weight").float()
    assert 0.015 < embed.std() < 0.025


def test_tied_architecture_stores_no_lm_head(tmp_path: Path) -> None:
    out = random_weights.build(_small_recipe(tied=True), tmp_path / "rw")
    with CheckpointReader(out) as reader:
        assert "lm_head.weight" not in reader.names


def test_synthetic_tokenizer_replaces_the_real_token_ids_offline(tmp_path: Path) -> None:
    out = random_weights.build(_small_recipe(tied=False), tmp_path / "rw")
    assert (out / "tokenizer.json").is_file()
    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    assert config["eos_token_id"] == generation["eos_token_id"][0] < 2048  # not Qwen3's 151645


def test_same_seed_same_weights(tmp_path: Path) -> None:
    recipe = _small_recipe(tied=False)
    a = random_weights.build(recipe, tmp_path / "a", seed=1)
    b = random_weights.build(recipe, tmp_path / "b", seed=1)
    with CheckpointReader(a) as ra, CheckpointReader(b) as rb:
        assert torch.equal(ra.get("lm_head.weight"), rb.get("lm_head.weight"))


def test_norm_weights_are_centred_where_the_models_own_init_centres_them() -> None:
    """Gemma's norms scale by (1 + w): random w near 1 would double every norm (chaotic)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(**get_recipe("gemma-3-4b").architecture)
    centres = random_weights.norm_centres(random_weights.meta_model(config))
    text_norms = [v for n, v in centres.items() if "language_model" in n]
    vision_norms = [v for n, v in centres.items() if "vision_tower" in n]
    assert text_norms and set(text_norms) == {0.0}  # Gemma3RMSNorm: x * (1 + w), w init 0
    assert vision_norms and set(vision_norms) == {1.0}  # SigLIP's LayerNorm: x * w, w init 1
    qwen = AutoConfig.for_model(**get_recipe("qwen3-0.6b").architecture)
    assert set(random_weights.norm_centres(random_weights.meta_model(qwen)).values()) == {1.0}


def test_random_gemma_norm_weights_sit_near_zero(tmp_path: Path) -> None:
    architecture = json.loads(json.dumps(get_recipe("gemma-3-1b").architecture))
    architecture.update(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        vocab_size=512,
    )
    recipe = Recipe(
        name="g", hub_id="google/gemma-3-1b-it", family="gemma3", architecture=architecture
    )
    out = random_weights.build(recipe, tmp_path / "rw", seed=0)
    with CheckpointReader(out) as reader:
        norm = reader.get("model.layers.0.input_layernorm.weight").float()
    assert abs(norm.mean()) < 0.05 and 0.05 < norm.std() < 0.15
