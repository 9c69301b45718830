"""Resolving what the user named (recipe, hub id, local directory) into a local HF directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mobq.errors import ModelNotFound
from mobq.recipes import Recipe, all_recipes, find_recipe_for_hub_id, get_recipe, suggest

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Only what an export needs: no pickled weights, no ONNX/GGUF copies.
HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer*",
    "*.model",
    "*.tiktoken",
    "*.jinja",
]

SourceKind = Literal["recipe", "hub", "local", "random"]


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    ref: str
    path: Path
    recipe: Recipe | None = None
    hub_id: str | None = None
    revision: str | None = None

    @property
    def display_name(self) -> str:
        if self.recipe is not None:
            return self.recipe.name
        if self.hub_id:
            return self.hub_id.split("/")[-1].lower()
        return self.path.name.lower()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "recipe": self.recipe.name if self.recipe else None,
            "hub_id": self.hub_id,
            "revision": self.revision,
            "path": str(self.path),
        }


def resolve(ref: str, *, revision: str | None = None) -> Source:
    """A recipe name, a hub id or a local directory -> a local directory with config.json."""
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")):
        return _local(ref, path)
    if ref in all_recipes():
        recipe = get_recipe(ref)
        local = download(recipe.hub_id, revision or recipe.revision)
        return Source("recipe", ref, local, recipe, recipe.hub_id, revision or recipe.revision)
    if HUB_ID.match(ref):
        local = download(ref, revision)
        return Source("hub", ref, local, find_recipe_for_hub_id(ref), ref, revision)
    raise ModelNotFound(
        f"'{ref}' is neither a recipe, a hub id (org/name) nor an existing directory"
        f"{suggest(ref, all_recipes())}; `mobq models` lists the recipes"
    )


def _local(ref: str, path: Path) -> Source:
    if not path.exists():
        raise ModelNotFound(f"no such directory: {path}")
    if not path.is_dir():
        raise ModelNotFound(
            f"{path} is a file; pass the Hugging Face model directory that holds it"
        )
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{path} has no config.json; pass a Hugging Face model directory")
    return Source("local", ref, path.resolve())


def download(hub_id: str, revision: str | None) -> Path:
    """Fetch (or find in the cache) a hub snapshot, its size announced; honours HF_HUB_OFFLINE."""
    from mobq import hub

    return hub.download(hub_id, revision, allow_patterns=HUB_PATTERNS)
