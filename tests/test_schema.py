"""One contract, three languages: the committed JSON Schemas and golden files stay in sync."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mobq.manifest import load_manifest, manifest_json_schema
from mobq.results import load_results, result_json_schema

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schema"
EXAMPLES = SCHEMA_DIR / "examples"


def test_committed_result_schema_is_generated_from_the_model() -> None:
    committed = json.loads((SCHEMA_DIR / "bench-result.schema.json").read_text())
    assert committed == result_json_schema(), (
        "regenerate: python -m mobq.results > docs/schema/bench-result.schema.json"
    )


def test_committed_manifest_schema_matches_the_model() -> None:
    committed = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    committed.pop("$schema", None)
    assert committed == manifest_json_schema()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("bench-result-*.json")), ids=lambda p: p.name)
def test_golden_results_validate_in_json_schema_and_pydantic(path: Path) -> None:
    schema = json.loads((SCHEMA_DIR / "bench-result.schema.json").read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)
    (result,) = load_results(path)
    assert result.decode_tokens_per_sec > 0


def test_golden_manifest_validates() -> None:
    schema = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    jsonschema.validate(json.loads((EXAMPLES / "manifest.json").read_text()), schema)
    manifest = load_manifest(EXAMPLES / "manifest.json")
    assert manifest.file("program").path == "model.pte"


def test_malformed_result_names_file_and_field(tmp_path: Path) -> None:
    from mobq.errors import InputError

    data = json.loads((EXAMPLES / "bench-result-host.json").read_text())
    data["decode_tokens_per_sec"] = "fast"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([data]))
    with pytest.raises(InputError, match=r"bad\.json: entry 0 field 'decode_tokens_per_sec'"):
        load_results(bad)
