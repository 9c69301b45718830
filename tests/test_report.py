"""mobq report: golden host and device results become report.md and PNG charts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq.cli import cli
from mobq.errors import InputError, OutputExists
from mobq.report import MEMORY_CHART, REPORT, TOKENS_CHART, report

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "schema" / "examples"
GOLDEN = sorted(EXAMPLES.glob("bench-result-*.json"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000


def test_report_renders_tables_and_every_chart(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = report(GOLDEN, out)
    assert result.results == 3
    assert result.models == ["qwen3-0.6b"]
    text = (out / REPORT).read_text()
    assert "## qwen3-0.6b" in text
    # One row per result, with its device and figures.
    for device, decode in (
        ("Google Pixel 8 Pro", "21.30"),
        ("iPhone16,2", "27.50"),
        ("Intel(R) Xeon(R) Processor", "38.90"),
    ):
        row = next(line for line in text.splitlines() if line.startswith(f"| {device} |"))
        assert f"| {decode} |" in row
    assert f"![{TOKENS_CHART}]({TOKENS_CHART})" in text
    sustained = [Path(c) for c in result.charts if Path(c).name.startswith("sustained-")]
    assert len(sustained) == 1 and "google-pixel-8-pro" in sustained[0].name
    assert f"]({sustained[0].name})" in text
    for chart in (out / TOKENS_CHART, out / MEMORY_CHART, *sustained):
        assert _is_png(chart), chart


def test_bad_result_names_file_and_field_and_writes_nothing(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "bench-result-ios.json").read_text())
    del data["peak_rss_mb"]
    bad = tmp_path / "phone.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"phone\.json: field 'peak_rss_mb': Field required"):
        report([*GOLDEN, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_report_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "r"
    report(GOLDEN[:1], out)
    with pytest.raises(OutputExists):
        report(GOLDEN[:1], out)
    assert report(GOLDEN[1:], out, force=True).results == 2


def test_cli_report_json_and_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        cli, ["-q", "report", *map(str, GOLDEN), "--out", str(tmp_path / "r"), "--json"]
    )
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.output)
    assert payload["results"] == 3 and len(payload["charts"]) == 3
    missing = runner.invoke(
        cli, ["-q", "report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2
    assert "no such result file" in missing.output and "Traceback" not in missing.output
