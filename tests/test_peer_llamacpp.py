"""bench/peer_llamacpp.py's ratios and interleaved rounds (the measuring itself is a benchmark)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import benchscripts

peer = benchscripts.load("peer_llamacpp")


def row(prefill: float, decode: float) -> dict[str, float]:
    return {"prefill_tokens_per_sec": prefill, "decode_tokens_per_sec": decode}


def test_ratios_against_each_quant_and_the_best_per_metric() -> None:
    rows = {
        peer.MOBQ: row(60.0, 12.0),
        "llama.cpp Q4_0": row(30.0, 10.0),  # the faster decoder
        "llama.cpp Q4_K_M": row(40.0, 8.0),  # the faster prefiller
    }
    found = peer.ratios(rows)
    assert found["llama.cpp Q4_0"] == {"prefill": 2.0, "decode": 1.2}
    assert found["llama.cpp Q4_K_M"] == {"prefill": 1.5, "decode": 1.5}
    assert found[peer.BEST] == {"prefill": 1.5, "decode": 1.2}
    assert peer.ratios({"llama.cpp Q4_0": row(1, 1)}) == {}


def test_rounds_alternate_who_goes_first_and_summarize_median_and_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    decode = iter([10.0, 14.0, 11.0])

    def fake_mobq(args):
        calls.append("mobq")
        return row(60.0, next(decode))

    def fake_llama(args, model):
        calls.append(model.name)
        return row(30.0, 10.0)

    monkeypatch.setattr(peer, "measure_mobq", fake_mobq)
    monkeypatch.setattr(peer, "measure_llama", fake_llama)
    args = argparse.Namespace(skip_mobq=False)
    ggufs = {quant: Path(quant) for quant in peer.QUANTS}
    rounds = [peer.measure_round(args, ggufs, index) for index in range(3)]
    assert calls == ["mobq", *peer.QUANTS, *peer.QUANTS, "mobq", "mobq", *peer.QUANTS]
    assert all(next(iter(r)) == peer.MOBQ for r in rounds)  # reported first either way
    best = peer.summarize(rounds)[peer.BEST]
    assert best["decode"] == {"min": 1.0, "median": 1.1, "max": 1.4}
    assert best["prefill"] == {"min": 2.0, "median": 2.0, "max": 2.0}


def test_rounds_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        peer.parse_args(["/tmp/x", "--rounds", "0"])
