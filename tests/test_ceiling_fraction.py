"""bench/ceiling_fraction.py: per-moment ratios, the verdict, bad input, and one real round on
the tiny export (the figures themselves are a benchmark's)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import benchscripts

cf = benchscripts.load("ceiling_fraction")


def test_a_segment_compares_decode_and_the_chain_with_the_mean_of_its_probes() -> None:
    # Two steps of 100 ms, each reading 2 GB: 20 GB/s; probes 30 and 50 GB/s: 40 GB/s.
    result = cf.segment((30.0, 50.0), 32.0, [100.0, 100.0], [2_000_000_000] * 2)
    assert result["read_gb_s"] == 40.0
    assert result["decode_gb_s"] == pytest.approx(20.0)
    assert result["decode_tok_s"] == pytest.approx(10.0)
    assert result["decode_over_read"] == pytest.approx(0.5)
    assert result["chain_over_read"] == pytest.approx(0.8)
    assert result["decode_over_chain"] == pytest.approx(0.625)


def test_a_round_is_the_median_of_its_segments_and_the_verdict_the_median_of_rounds() -> None:
    segments = [
        cf.segment((r, r), 0.8 * r, [100.0], [int(f * r * 1e8)])
        for r, f in ((20.0, 0.7), (40.0, 0.75), (30.0, 0.9))
    ]
    summary = cf.round_summary(segments)
    assert summary["decode_over_read"] == pytest.approx(0.75)
    assert summary["chain_over_read"] == pytest.approx(0.8)
    assert summary["read_gb_s_range"] == [20.0, 40.0]
    rounds = [{key: value for key in cf.RATIOS} for value in (0.7, 0.72, 0.68)]
    verdict = cf.verdict(rounds)
    assert verdict["decode_over_read"] == {"median": 0.7, "min": 0.68, "max": 0.72}


def test_a_directory_that_is_not_an_export_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cf.parse_args([str(tmp_path)])
    assert stop.value.code == 2
    assert "is not a mobq export" in capsys.readouterr().err


def test_a_float_export_is_refused(export_tied_fp32, capsys) -> None:
    out, _ = export_tied_fp32
    with pytest.raises(SystemExit):
        cf.parse_args([str(out)])
    assert "this compares 8da4w" in capsys.readouterr().err


def test_decoding_past_the_context_is_refused(export_tied_8da4w, capsys) -> None:
    out, manifest = export_tied_8da4w
    segments = str(manifest.runtime.max_context_len)  # x 3 steps each: far past it
    with pytest.raises(SystemExit):
        cf.parse_args([str(out), "--segments", segments])
    assert "exceed the export's context" in capsys.readouterr().err


def test_one_round_measures_every_segment_of_a_real_export(
    export_tied_8da4w, tmp_path: Path, monkeypatch
) -> None:
    out, _ = export_tied_8da4w
    monkeypatch.setattr(cf, "CHAIN_MB", 0.05)  # a few tiny linears: the plumbing, not the speed
    args = cf.parse_args([str(out), "--segments", "3", "--steps", "2", "--prompt-tokens", "8"])
    args = argparse.Namespace(**{**vars(args), "chain": cf.build_chain(out, tmp_path)})
    result = cf.one_round(args)
    assert len(result["segments"]) == 3
    for segment in result["segments"]:
        assert segment["read_gb_s"] > 0 and segment["chain_gb_s"] > 0
        assert segment["decode_tok_s"] > 0 and segment["decode_over_read"] > 0
