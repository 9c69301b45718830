"""One benchmark definition: mobq.stats on the golden runner-stats files the Kotlin and Swift
cores are tested on too (docs/schema/examples/runner-stats)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from mobq import stats
from mobq.errors import StageError

CASES = Path(__file__).resolve().parents[1] / "docs" / "schema" / "examples" / "runner-stats"


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.json"))


def test_golden_cases_cover_figures_and_refusals() -> None:
    kinds = {"error" in json.loads(p.read_text())["expected"] for p in _cases()}
    assert kinds == {True, False}, "the shared files must pin both figures and refusals"


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_golden_runner_stats(path: Path) -> None:
    case = json.loads(path.read_text())
    expected = case["expected"]
    if "error" in expected:
        with pytest.raises(StageError, match=expected["error"]):
            stats.figures(case["stats"])
        return
    got = asdict(stats.figures(case["stats"]))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    # Where the runner wrote its own rates (stats_to_json_string), the definition agrees.
    if not got["timer_floor"]:
        for ours, theirs in (
            ("prefill_tokens_per_sec", "prefill_token_per_sec"),
            ("decode_tokens_per_sec", "decode_token_per_sec"),
        ):
            if theirs in case["stats"]:
                assert got[ours] == pytest.approx(case["stats"][theirs], rel=1e-3), ours


def test_the_apps_read_the_same_rules() -> None:
    """The Kotlin and Swift definitions name this module and the golden folder they share."""
    root = CASES.parents[3]
    for source in (
        root / "android_app/core/src/main/kotlin/dev/mobq/core/RunnerStats.kt",
        root / "ios_app/MobqCore/Sources/MobqCore/RunnerStats.swift",
    ):
        text = source.read_text()
        assert "docs/schema/examples/runner-stats" in text, source
        for key in stats.REQUIRED:
            assert f'"{key}"' in text, f"{source.name} does not read {key}"
