"""bench/ab_decode.py's pairing and verdict (the timing itself is a benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchscripts

ab = benchscripts.load("ab_decode")


def test_pairs_alternate_which_program_runs_first() -> None:
    order: list[str] = []
    a_ms, b_ms = ab.alternate(
        lambda: order.append("a") or 2.0, lambda: order.append("b") or 1.0, runs=4
    )
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert a_ms == [2.0] * 4 and b_ms == [1.0] * 4


def test_summary_is_the_median_of_paired_ratios_not_a_ratio_of_medians() -> None:
    # B is 10 % faster in every pair while the machine itself slows down 3x.
    a_ms = [10.0, 20.0, 30.0, 11.0, 33.0]
    b_ms = [a / 1.1 for a in a_ms]
    result = ab.summary(a_ms, b_ms)
    assert result["a_over_b"]["median"] == pytest.approx(1.1)
    assert result["a_over_b"]["q1"] == pytest.approx(1.1)
    assert result["runs"] == 5


def test_verdict_is_the_median_over_rounds_with_its_range() -> None:
    rounds = [{"decode": {"a_over_b": {"median": m}}} for m in (1.02, 1.05, 0.99)]
    assert ab.verdict(rounds, "decode") == {"median": 1.02, "min": 0.99, "max": 1.05}


def test_a_directory_without_a_program_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model.pte").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        ab.parse_args([str(tmp_path / "a"), str(tmp_path / "b")])
    assert stop.value.code == 2
    assert "holds no model.pte" in capsys.readouterr().err
