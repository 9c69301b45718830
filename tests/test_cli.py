"""The CLI: one clear line and a non-zero exit for bad input, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq.cli import cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *args])
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, expected: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert expected in lines[0], output


def test_models_lists_every_recipe_as_table_and_json() -> None:
    code, output = invoke("models", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(output)}
    assert rows["qwen3-4b"]["hub_id"] == "Qwen/Qwen3-4B"
    assert rows["qwen3-8b"]["tied"] is False and rows["qwen3-0.6b"]["tied"] is True
    assert 3.9 < rows["qwen3-4b"]["parameters_b"] < 4.1
    code, output = invoke("models")
    assert code == 0 and "qwen3-1.7b" in output


def test_help_shows_examples() -> None:
    code, output = invoke("export", "--help")
    assert code == 0 and "mobq export qwen3-4b --ctx 1024" in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("export", "./no/such/dir"), "no such directory"),
        (("export", "qwen3-4"), "did you mean qwen3-4b"),
        (("export", "not a model"), "neither a recipe, a hub id"),
        (("export", "qwen3-0.6b", "--random-weights", "--scheme", "int3"), "unknown scheme 'int3'"),
        (("export", "qwen3-0.6b", "--random-weights", "--override", "lm_head"), "PATTERN=SCHEME"),
    ],
)
def test_bad_export_input(args: tuple[str, ...], expected: str) -> None:
    code, output = invoke(*args)
    assert_one_line_error(code, output, expected)


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [("0", "positive"), ("-5", "positive"), ("100000", "max_position_embeddings")],
)
def test_bad_ctx(tiny_tied: Path, tmp_path: Path, ctx: str, expected: str) -> None:
    code, output = invoke("export", str(tiny_tied), "--ctx", ctx, "--out", str(tmp_path / "o"))
    assert_one_line_error(code, output, expected)
    assert not (tmp_path / "o").exists()


def test_hub_id_offline_without_cache_is_one_line() -> None:
    code, output = invoke("export", "nobody/not-a-real-model")
    assert_one_line_error(code, output, "not in the local Hugging Face cache")


def test_existing_output_is_refused_without_force(tiny_tied: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, output = invoke("export", str(tiny_tied), "--out", str(out))
    assert_one_line_error(code, output, "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_file_instead_of_model_directory(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    code, output = invoke("export", str(path))
    assert_one_line_error(code, output, "is a file")


@pytest.mark.slow
def test_run_streams_and_reports(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("run", str(out), "--prompt", "Hello", "--max-new-tokens", "4", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert 0 < data["tokens"] <= 4 and data["prompt_tokens"] > 1
    assert data["context_used"] == data["prompt_tokens"] + data["tokens"]


def test_run_through_the_stock_runner_reports_its_stats(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke(
        "run", str(out), "--prompt", "Hello", "--max-new-tokens", "4", "--stock-runner", "--json"
    )
    assert code == 0, output
    data = json.loads(output)
    assert 0 < data["tokens"] <= 4 and data["stats"]["prompt_tokens"] > 1


def test_run_on_a_directory_without_manifest(tmp_path: Path) -> None:
    code, output = invoke("run", str(tmp_path), "--prompt", "hi")
    assert_one_line_error(code, output, "no manifest")
