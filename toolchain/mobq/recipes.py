"""Model recipes: one YAML file per model in export_configs/, loaded strictly.

A recipe holds choices only (hub id, family, default scheme and context, quantization
overrides) plus an architecture snapshot used solely for `--random-weights`. Token ids,
vocabulary, tie flags and key maps are derived from the checkpoint, never written here.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mobq.errors import InputError, ModelNotFound
from mobq.schemes import DEFAULT_GROUP_SIZE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantOverride(_Strict):
    """Modules whose name fully matches `pattern` (a regex) get `scheme` instead of the default."""

    pattern: str
    scheme: str
    why: str = Field(description="one line: why this module differs")

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern {value!r} is not a valid regex: {exc}") from exc
        return value

    @field_validator("scheme")
    @classmethod
    def _known_part(cls, value: str) -> str:
        from mobq.schemes import check_module_scheme_name

        check_module_scheme_name(value)
        return value


class RecipeDefaults(_Strict):
    """A recipe's defaults; `RecipeDefaults()` is mobq's own, for a model without a recipe."""

    scheme: str = "8da4w"
    ctx: int = Field(1024, gt=0)
    group_size: int = Field(DEFAULT_GROUP_SIZE, gt=0)
    hqq: bool = False

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        from mobq.schemes import check_scheme_name

        check_scheme_name(value)
        return value


class Recipe(_Strict):
    name: str
    hub_id: str
    revision: str | None = None
    family: str
    description: str = ""
    defaults: RecipeDefaults = RecipeDefaults()
    overrides: tuple[QuantOverride, ...] = ()
    architecture: dict[str, Any] = Field(
        description="config.json fields of the real checkpoint, for --random-weights only"
    )
    source_file: Path | None = Field(default=None, exclude=True)

    @field_validator("architecture")
    @classmethod
    def _has_architectures(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value.get("architectures"):
            raise ValueError("architecture must include 'architectures' (from config.json)")
        return value


def recipes_dir() -> Path:
    """MOBQ_RECIPES for a custom set, else export_configs/ of this checkout (an editable
    install), else the copy a wheel ships inside the package (setup.py puts it there)."""
    override = os.environ.get("MOBQ_RECIPES")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent
    checkout = package.parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "export_configs").is_dir():
        return checkout / "export_configs"
    return package / "data" / "export_configs"


def load_recipe_file(path: Path) -> Recipe:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read recipe {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"recipe {path} is not valid YAML: {_one_line(str(exc))}") from exc
    if not isinstance(raw, dict):
        raise InputError(
            f"recipe {path} must be a mapping of keys to values, got {type(raw).__name__}"
        )
    try:
        return Recipe(**raw, source_file=Path(path))
    except ValidationError as exc:
        raise InputError(f"recipe {path}: {_describe(exc)}") from exc
    except TypeError as exc:
        raise InputError(f"recipe {path}: {exc}") from exc


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(first["loc"])
        return f"unknown key '{where}'; allowed keys here: {', '.join(allowed)}"
    return f"{where}: {first['msg']}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return [k for k in model.model_fields if k != "source_file"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


@cache
def _all_recipes(directory: str) -> dict[str, Recipe]:
    found: dict[str, Recipe] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        recipe = load_recipe_file(path)
        if recipe.name != path.stem:
            raise InputError(
                f"recipe {path}: name '{recipe.name}' must match the file name '{path.stem}'"
            )
        found[recipe.name] = recipe
    return found


def all_recipes() -> dict[str, Recipe]:
    return _all_recipes(str(recipes_dir()))


def get_recipe(name: str) -> Recipe:
    recipes = all_recipes()
    if name in recipes:
        return recipes[name]
    raise ModelNotFound(
        f"unknown recipe '{name}'{suggest(name, recipes)}; `mobq models` lists them"
    )


def find_recipe_for_hub_id(hub_id: str) -> Recipe | None:
    for recipe in all_recipes().values():
        if recipe.hub_id.lower() == hub_id.lower():
            return recipe
    return None


def suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""
