"""Recipes load strictly; bad ones fail naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobq import recipes
from mobq.errors import InputError, ModelNotFound
from mobq.families import get_family

QWEN3 = ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b")


def test_every_shipped_recipe_loads_and_names_a_known_family() -> None:
    loaded = recipes.all_recipes()
    assert set(QWEN3) <= set(loaded)
    for recipe in loaded.values():
        get_family(recipe.family)
        assert recipe.architecture["architectures"]
        assert recipe.source_file is not None and recipe.source_file.stem == recipe.name


def test_tie_flags_match_the_real_checkpoints() -> None:
    tied = {name: recipes.get_recipe(name).architecture["tie_word_embeddings"] for name in QWEN3}
    assert tied == {"qwen3-0.6b": True, "qwen3-1.7b": True, "qwen3-4b": True, "qwen3-8b": False}


def test_unknown_recipe_suggests_close_names() -> None:
    with pytest.raises(ModelNotFound, match=r"did you mean qwen3-4b"):
        recipes.get_recipe("qwen3-4")


def _write(tmp_path: Path, text: str, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


BASE = """
name: bad
hub_id: org/model
family: qwen3
architecture: {architectures: [Qwen3ForCausalLM]}
"""


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "eos_ids: [1, 2]\n")
    with pytest.raises(InputError) as info:
        recipes.load_recipe_file(path)
    message = str(info.value)
    assert str(path) in message and "eos_ids" in message and "hub_id" in message


def test_unknown_nested_key_lists_the_nested_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "defaults: {sheme: 8da4w}\n")
    with pytest.raises(
        InputError, match=r"defaults.sheme.*allowed keys here: scheme, ctx, group_size, hqq"
    ):
        recipes.load_recipe_file(path)


def test_unknown_scheme_and_bad_override_regex_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown scheme 'int3'"):
        recipes.load_recipe_file(_write(tmp_path, BASE + "defaults: {scheme: int3}\n"))
    bad_regex = BASE + "overrides: [{pattern: '(', scheme: 8da8w, why: test}]\n"
    with pytest.raises(InputError, match="not a valid regex"):
        recipes.load_recipe_file(_write(tmp_path, bad_regex, "bad2"))


def test_malformed_yaml_and_non_mapping_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid YAML"):
        recipes.load_recipe_file(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(InputError, match="must be a mapping"):
        recipes.load_recipe_file(_write(tmp_path, "- a\n- b\n", "list"))


def test_recipe_name_must_match_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, BASE.replace("name: bad", "name: other"), "bad")
    monkeypatch.setenv("MOBQ_RECIPES", str(tmp_path))
    with pytest.raises(InputError, match="must match the file name"):
        recipes.all_recipes()
