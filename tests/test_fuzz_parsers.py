"""Parsers of user-supplied files never crash: any input parses or raises the one clear error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobq.errors import InputError
from mobq.manifest import load_manifest
from mobq.recipes import load_recipe_file
from mobq.results import load_results

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "schema" / "examples"
RECIPE = Path(__file__).resolve().parents[1] / "export_configs" / "qwen3-4b.yaml"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc[:3]):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    clone = json.loads(json.dumps(doc))
    parent = clone
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return clone


def mutations(doc: Any) -> st.SearchStrategy[Any]:
    return st.tuples(st.sampled_from(_paths(doc)), json_values, st.booleans()).map(
        lambda t: _mutate(doc, *t)
    )


def _write(data: str | bytes, suffix: str) -> Path:
    mode = "wb" if isinstance(data, bytes) else "w"
    with tempfile.NamedTemporaryFile(mode, suffix=suffix, delete=False) as handle:
        handle.write(data)
    return Path(handle.name)


def _parses_or_clear_error(parse: Any, path: Path) -> None:
    try:
        parse(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    finally:
        path.unlink()


MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text())
RESULT = json.loads((EXAMPLES / "bench-result-android-sustained.json").read_text())
RECIPE_DOC = yaml.safe_load(RECIPE.read_text())


@FUZZ
@given(mutations(MANIFEST))
def test_manifest_mutations(doc: Any) -> None:
    _parses_or_clear_error(load_manifest, _write(json.dumps(doc), ".json"))


@FUZZ
@given(st.one_of(mutations(RESULT), st.lists(mutations(RESULT), max_size=3)))
def test_result_mutations(doc: Any) -> None:
    _parses_or_clear_error(load_results, _write(json.dumps(doc), ".json"))


@FUZZ
@given(mutations(RECIPE_DOC))
def test_recipe_mutations(doc: Any) -> None:
    _parses_or_clear_error(load_recipe_file, _write(yaml.safe_dump(doc), ".yaml"))


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_in_every_parser(text: str) -> None:
    for parse, suffix in (
        (load_manifest, ".json"),
        (load_results, ".json"),
        (load_recipe_file, ".yaml"),
    ):
        _parses_or_clear_error(parse, _write(text, suffix))


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_in_every_parser(data: bytes) -> None:
    for parse, suffix in (
        (load_manifest, ".json"),
        (load_results, ".json"),
        (load_recipe_file, ".yaml"),
    ):
        _parses_or_clear_error(parse, _write(data, suffix))
