"""Phone projection: calibrated on the two published iPhone 15 Pro figures, within ±20 % of both."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mobq import projection
from mobq.cli import cli

ROWS = projection._calibration_rows()


def test_both_published_figures_are_calibration_rows() -> None:
    assert {(r["recipe"], r["decode_tokens_per_sec"]) for r in ROWS} == {
        ("qwen3-4b", 14.8),
        ("phi-4-mini", 17.3),
    }


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["recipe"])
def test_projection_lands_within_20_percent_of_each_published_figure(row: dict) -> None:
    shape = projection.calibration_shape(row)
    got = projection.project(shape, projection.find_phone(row["phone"]))
    assert got.decode_tokens_per_sec == pytest.approx(row["decode_tokens_per_sec"], rel=0.20)
    # The memory projection against the app's reported use at the card's ctx.
    assert got.need_mb == pytest.approx(row["memory_mb"], rel=0.20)
    assert got.fits  # both run on an 8 GB iPhone


@pytest.mark.parametrize("held_out", range(len(ROWS)))
def test_calibrated_on_one_figure_the_other_is_predicted_within_20_percent(held_out: int) -> None:
    """The method, not just the fit: one factor from one model predicts the other model."""
    rest = tuple(r for i, r in enumerate(ROWS) if i != held_out)
    row = ROWS[held_out]
    factor = projection.efficiency(rest)
    got = projection.project(
        projection.calibration_shape(row), projection.find_phone(row["phone"]), factor
    )
    assert got.decode_tokens_per_sec == pytest.approx(row["decode_tokens_per_sec"], rel=0.20)


def test_the_estimate_from_an_export_uses_its_real_program(export_tied_8da4w) -> None:
    out, manifest = export_tied_8da4w
    shape = projection.ModelShape.from_manifest(manifest)
    assert shape.program_bytes == (out / "model.pte").stat().st_size and not shape.estimated
    assert 0 < shape.embedding_bytes < shape.program_bytes
    (first, *_) = projection.project_all(shape)
    assert first.decode_tokens_per_sec > first.decode_tokens_per_sec_full_ctx > 0


def test_models_phone_prints_the_projection_per_recipe() -> None:
    result = CliRunner().invoke(cli, ["models", "--phone", "iphone-8gb", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    qwen = rows["qwen3-4b"]["projection"]
    assert qwen["phone"] == "iphone-8gb" and "projection" in qwen["label"]
    assert qwen["decode_tokens_per_sec"] > rows["qwen3-8b"]["projection"]["decode_tokens_per_sec"]
    text = CliRunner().invoke(cli, ["models", "--phone", "iphone-8gb"])
    assert text.exit_code == 0 and "projected" in text.output


def test_an_unknown_phone_class_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["models", "--phone", "iphone-99gb"])
    assert result.exit_code == 2 and "unknown phone class 'iphone-99gb'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bundle_prints_the_projection_per_phone_class(export_tied_8da4w, tmp_path) -> None:
    export_dir, manifest = export_tied_8da4w
    app_dir = tmp_path / "ios_app"
    app_dir.mkdir()
    args = ["-q", "bundle", "ios", str(export_dir), "--app-dir", str(app_dir)]
    out = CliRunner().invoke(cli, [*args, "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    shape = projection.ModelShape.from_manifest(manifest)
    expected = {p.phone: p.to_dict() for p in projection.project_all(shape)}
    assert {p["phone"] for p in payload["projections"]} == {f["phone"] for f in payload["fits"]}
    for p in payload["projections"]:
        assert p == expected[p["phone"]] and "projection" in p["label"]
    human = CliRunner().invoke(cli, [*args, "--force"])
    assert (
        human.exit_code == 0 and "projected" in human.output and "not a measurement" in human.output
    )


def test_the_size_estimate_matches_a_real_full_size_export() -> None:
    """docs/performance.md: `mobq export qwen3-0.6b --random-weights --ctx 512` gave a 492.9 MB
    .pte whose int8 embedding table is 155.6 MB. The recipe estimate (what `models --phone` and
    the calibration use) must agree with what an export reads, or calibrating on estimates and
    projecting exports would measure two different things."""
    from mobq.recipes import get_recipe

    recipe = get_recipe("qwen3-0.6b")
    shape = projection.ModelShape.from_architecture(
        recipe.name, recipe.architecture, "8da4w", 32, 512
    )
    assert shape.program_bytes / 1e6 == pytest.approx(492.9, rel=0.02)
    assert shape.embedding_bytes / 1e6 == pytest.approx(155.6, rel=0.01)
