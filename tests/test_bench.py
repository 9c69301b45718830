"""mobq bench: schema-valid results with positive figures, the decode ceiling, CSV and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mobq import benchmark as bench
from mobq.cli import cli
from mobq.errors import InputError
from mobq.results import BenchResult

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema" / "bench-result.schema.json"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *args])
    return result.exit_code, result.output


def _positive(result: BenchResult) -> None:
    for value in (
        result.load_ms,
        result.ttft_ms,
        result.prefill_tokens_per_sec,
        result.decode_tokens_per_sec,
        result.peak_rss_mb,
        result.model_size_mb,
    ):
        assert value > 0


@pytest.fixture(scope="module")
def bench_json(export_tied_8da4w) -> list[dict]:
    """One CLI run, each configuration in its own worker process (the default)."""
    out, _ = export_tied_8da4w
    code, output = invoke(
        "bench", str(out), "-p", "8,24", "-n", "8", "-t", "1", "--reps", "2", "--json"
    )
    assert code == 0, output
    return json.loads(output)


def test_bench_json_follows_the_shared_schema(bench_json: list[dict]) -> None:
    schema = json.loads(SCHEMA.read_text())
    assert len(bench_json) == 2
    for item in bench_json:
        jsonschema.validate(item, schema)
        result = BenchResult.model_validate(item)
        _positive(result)
        assert result.threads == 1
        assert result.repetitions == 2 and result.warmup == 1
        assert result.device and result.runtime["executorch"]
        assert result.notes["fresh_process"] is True
        # Imports (torch, pybindings) are held apart: the rest is what the program costs.
        notes = result.notes
        assert notes["python_baseline_rss_mb"] <= notes["imports_rss_mb"] <= result.peak_rss_mb
        above = result.peak_rss_mb - notes["imports_rss_mb"]
        assert notes["above_imports_mb"] == pytest.approx(above, abs=0.1)
        pte_mib = result.model_size_mb * 1e6 / 2**20
        assert notes["above_imports_per_pte"] == pytest.approx(above / pte_mib, rel=0.02)
        assert notes["dispatch_isa"]  # which kernels ran: AVX2 and AVX-512 figures differ 3x
        if sys.platform == "linux":  # the runner's mlock failed, as it does in an app
            assert notes["mlock"].startswith("denied") and notes["locked_mb"] == 0


def test_prompt_lengths_are_exact(bench_json: list[dict]) -> None:
    assert [r["prompt_tokens"] for r in bench_json] == [8, 24]


def test_spread_orders_min_median_max(bench_json: list[dict]) -> None:
    for item in bench_json:
        for spread in item["spread"].values():
            assert spread["min"] <= spread["median"] <= spread["max"]


def test_ceiling_is_bandwidth_over_bytes_per_token(
    bench_json: list[dict], export_tied_8da4w
) -> None:
    out, manifest = export_tied_8da4w
    ceiling = bench_json[0]["ceiling"]
    params = manifest.model.params
    # Every weight but the embedding table (one row is gathered), plus the KV cache so far:
    # -p 8 -n 8 puts the middle decoded token at position 12; int8 embeddings, fp32 cache.
    weights = (out / "model.pte").stat().st_size - params["vocab_size"] * params["dim"]
    kv = 2 * params["n_layers"] * params["n_kv_heads"] * params["head_dim"] * 4 * 12
    assert ceiling["bytes_per_token"] == weights + kv
    limit = ceiling["memory_bandwidth_gb_s"] * 1e9 / ceiling["bytes_per_token"]
    assert ceiling["decode_tokens_per_sec_limit"] == pytest.approx(limit, rel=1e-3)
    assert ceiling["fraction_of_limit"] == pytest.approx(
        bench_json[0]["decode_tokens_per_sec"] / limit, abs=1e-3
    )


def test_ceiling_at_run_uses_the_bandwidth_around_the_worker(bench_json: list[dict]) -> None:
    """Neighbours on a shared host take bandwidth for minutes: each configuration also gets
    the ceiling with the bandwidth measured just before and after its worker, the higher."""
    for item in bench_json:
        at_run = item["notes"]["ceiling_at_run"]
        before, after = at_run["memory_bandwidth_gb_s"]
        assert before > 0 and after > 0
        limit = max(before, after) * 1e9 / item["ceiling"]["bytes_per_token"]
        assert at_run["decode_tokens_per_sec_limit"] == pytest.approx(limit, rel=1e-3)
        assert at_run["fraction_of_limit"] == pytest.approx(
            item["decode_tokens_per_sec"] / limit, abs=1e-3
        )


def test_bandwidth_is_measured_once_and_cached(session_cache: Path) -> None:
    first = bench.memory_bandwidth_gb_s(1)
    assert first[0] > 0
    assert list((session_cache / "hostinfo").glob("bandwidth-*.json"))


def test_a_higher_bandwidth_replaces_the_cached_one_a_lower_does_not(
    session_cache: Path,
) -> None:
    """The cached figure is the machine's best: a first measurement under load must not
    understate the ceiling for good, and a loaded run must not lower it."""
    threads = 7  # a thread count no other test caches
    path = bench._bandwidth_path(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"gb_s": 11.7, "method": "loaded", "cpu": "x"}))
    bench.remember_bandwidth(threads, 9.0)
    assert bench.memory_bandwidth_gb_s(threads)[0] == 11.7
    bench.remember_bandwidth(threads, 32.5)
    gb_s, method = bench.memory_bandwidth_gb_s(threads)
    assert gb_s == 32.5 and "best seen" in method


def test_in_process_csv(export_tied_8da4w) -> None:
    """A fresh process, as a user runs it: the runtime's first import probes the CPU and logs
    to fd 1, which must not land in the CSV."""
    import subprocess
    import sys

    out, _ = export_tied_8da4w
    args = ["bench", str(out), "-p", "8", "-n", "4", "--reps", "1", "--in-process", "--csv"]
    proc = subprocess.run(
        [sys.executable, "-m", "mobq", "--quiet", *args], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout
    rows = list(csv.DictReader(io.StringIO(output)))
    assert len(rows) == 1
    assert rows[0]["prompt_tokens"] == "8"
    assert float(rows[0]["decode_tokens_per_sec"]) > 0
    assert float(rows[0]["peak_rss_mb"]) > 0


def test_table_shows_the_ceiling(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("bench", str(out), "-p", "8", "-n", "4", "--reps", "1", "--in-process")
    assert code == 0, output
    assert "decode ceiling" in output and "GB/s" in output


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "90", "-n", "64"], "exceeds the export's context window of 96"),
        (["-p", "12,abc"], "comma-separated token counts"),
        (["-p", "0"], "positive token counts"),
        (["-p", "8", "-n", "4", "--reps", "0"], "--reps must be >= 1"),
        (["--json", "--csv"], "choose one of --json and --csv"),
    ],
)
def test_bad_options_are_one_line_errors(export_tied_8da4w, args: list[str], message: str) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("bench", str(out), *args)
    assert code == 2
    assert message in output


def test_missing_export(tmp_path: Path) -> None:
    code, output = invoke("bench", str(tmp_path))
    assert code == 2 and "no manifest" in output


def test_prompt_of_length_is_exact(export_tied_8da4w) -> None:
    from mobq.metadata import load_hf_tokenizer

    out, _ = export_tied_8da4w
    tokenizer = load_hf_tokenizer(out)
    for tokens in (1, 7, 64, 300):
        text = bench.prompt_of_length(tokenizer, tokens)
        assert len(tokenizer.encode(text, add_special_tokens=False).ids) == tokens


def test_parse_lengths() -> None:
    assert bench.parse_lengths("128, 512", "-p") == [128, 512]
    with pytest.raises(InputError):
        bench.parse_lengths("", "-p")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_MEMLOCK and capabilities are Linux's")
def test_deny_mlock_makes_mlock_fail_even_for_root() -> None:
    """Root would pin the .pte's constant segment in RSS; an app cannot, nor can the worker."""
    probe = (
        "import ctypes, mmap\n"
        "from mobq.benchmark import deny_mlock\n"
        "print(deny_mlock())\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "page = mmap.mmap(-1, 1 << 20)\n"
        "address = ctypes.addressof(ctypes.c_char.from_buffer(page))\n"
        "print(libc.mlock(ctypes.c_void_p(address), 1 << 20))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    what, result = done.stdout.strip().splitlines()[-2:]
    assert what.startswith("denied") and result == "-1"
