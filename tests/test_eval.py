"""mobq eval: perplexity of reference, eager quantized and .pte on the same windows; agreement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mobq import evaluate
from mobq.cli import cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def eval_json(export_tied_8da4w) -> dict:
    out, _ = export_tied_8da4w
    result = CliRunner().invoke(cli, ["--quiet", "eval", str(out), "--max-tokens", "150", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # progress and library chatter go to stderr


def test_all_three_models_are_scored(eval_json: dict) -> None:
    scores = {s["model"]: s for s in eval_json["scores"]}
    assert set(scores) == {"reference", "eager_quantized", "pte"}
    for score in scores.values():
        assert score["skipped"] is None
        assert score["perplexity"] > 1
        assert score["predictions"] == eval_json["tokens"] - math.ceil(
            eval_json["tokens"] / eval_json["window"]
        )
        assert score["perplexity"] == pytest.approx(math.exp(score["mean_nll"]), rel=1e-3)
    assert eval_json["window"] == 96 and eval_json["tokens"] == 150


def test_pte_matches_its_eager_quantized_model(eval_json: dict) -> None:
    scores = {s["model"]: s for s in eval_json["scores"]}
    assert scores["pte"]["perplexity"] == pytest.approx(
        scores["eager_quantized"]["perplexity"], rel=0.02
    )
    agreement = eval_json["agreement"]
    assert set(agreement) == {
        "eager_quantized_vs_reference",
        "pte_vs_reference",
        "pte_vs_eager_quantized",
    }
    assert agreement["pte_vs_eager_quantized"] >= 0.9
    assert all(0 <= v <= 1 for v in agreement.values())


def test_missing_checkpoints_are_skipped_with_a_reason(export_tied_8da4w, tmp_path: Path) -> None:
    out, manifest = export_tied_8da4w
    copy = tmp_path / "export"
    copy.mkdir()
    for entry in manifest.files:
        (copy / entry.path).write_bytes((out / entry.path).read_bytes())
    moved = manifest.model_copy(deep=True)
    moved.model.source["path"] = str(tmp_path / "gone")
    moved.quantization["path"] = str(tmp_path / "gone-too")
    moved.write(copy)
    result = evaluate.run(copy, max_tokens=40)
    assert result.score("reference").skipped.startswith(
        "the source checkpoint is not on this machine"
    )
    assert "no longer in the mobq cache" in result.score("eager_quantized").skipped
    assert result.score("pte").perplexity > 1
    assert result.agreement == {}


def test_custom_text_and_table(export_tied_8da4w, tmp_path: Path) -> None:
    out, _ = export_tied_8da4w
    text = tmp_path / "t.txt"
    text.write_text("The river runs to the sea and the sea is never full. " * 10)
    code, output = invoke("eval", str(out), "--text", str(text), "--max-tokens", "60")
    assert code == 0, output
    assert "perplexity" in output and "top-1 agreement" in output and "t.txt" in output


def test_lm_eval_without_the_package_says_how_to_install(export_tied_8da4w, monkeypatch) -> None:
    out, _ = export_tied_8da4w
    monkeypatch.setattr(evaluate, "lm_eval_available", lambda: False)
    code, output = invoke("eval", str(out), "--lm-eval", "hellaswag")
    assert code == 2
    assert "pip install 'mobq[eval]'" in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "/nonexistent/t.txt"], "no such text file"),
        (["--max-tokens", "1"], "--max-tokens must be >= 2"),
    ],
)
def test_bad_options(export_tied_8da4w, args: list[str], message: str) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("eval", str(out), *args)
    assert code == 2 and message in output


def test_nll_and_windows() -> None:
    assert evaluate.token_windows(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert evaluate.token_windows(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    logits = torch.full((3, 5), -1e9)
    logits[0, 2] = logits[1, 3] = logits[2, 4] = 0
    nll, top1 = evaluate.nll_and_top1(logits, [1, 2, 3, 4])
    assert nll == pytest.approx(0, abs=1e-6) and top1 == [2, 3, 4]
