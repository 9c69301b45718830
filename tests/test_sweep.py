"""`mobq sweep` on a real local Ray: cells in parallel, one failing alone, reruns cached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mobq import sweep
from mobq.cli import cli
from mobq.errors import InputError


def write_plan(path: Path, **plan: object) -> Path:
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.fixture(scope="module")
def broken_model(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    broken = tmp_path_factory.mktemp("broken") / "qwen3-broken"
    shutil.copytree(tiny_untied, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 128)
    return broken


@pytest.fixture(scope="module")
def swept(tiny_tied: Path, broken_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One good model in two schemes beside a broken one: 4 cells, 2 real exports (~2 min
    each here), which is what the orchestration needs; the families have their own tests."""
    root = tmp_path_factory.mktemp("sweep")
    plan = write_plan(
        root / "plan.yaml",
        models=[str(tiny_tied), str(broken_model)],
        schemes=["8da4w", "fp32"],
        ctx=[64],
        steps=["export", "bench", "eval"],
        bench={"prompt_tokens": 16, "gen_tokens": 8, "warmup": 0, "reps": 1},
        eval={"max_tokens": 64},
    )
    jobs = sweep.expand(sweep.load_plan(plan), str(root / "runs"), cpus_per_job=1)
    return root, plan, sweep.run_sweep(jobs, str(root / "runs"), cpus=2)


@pytest.mark.slow
def test_every_good_cell_is_exported_and_verified(swept) -> None:
    root, _, summary = swept
    by_name = {j.name: j for j in summary.jobs}
    for model in ("qwen3-tied",):
        for scheme in ("8da4w", "fp32"):
            job = by_name[f"{model}-{scheme}-ctx64"]
            assert job.status in ("done", "cached"), job
            assert job.figures["sqnr_db_min"] > 20
            manifest = json.loads((root / "runs" / job.name / "manifest.json").read_text())
            assert manifest["verification"]["passed"] and manifest["export"]["ctx"] == 64
    assert summary.mode == "ray" and summary.resources["cpus"] == 2


@pytest.mark.slow
def test_bench_and_eval_figures_reach_the_summary_and_the_report(swept) -> None:
    from mobq.results import load_results

    root, _, summary = swept
    done = [j for j in summary.jobs if j.status != "failed"]
    for job in done:
        assert (
            job.figures["decode_tokens_per_sec"] > 0 and job.figures["prefill_tokens_per_sec"] > 0
        )
        assert job.figures["pte_perplexity"] > 1
        (result,) = load_results(root / "runs" / job.name / sweep.BENCH_FILE)  # the shared schema
        assert result.prompt_tokens == 16 and result.ctx == 64
        assert (root / "runs" / job.name / sweep.EVAL_FILE).is_file()
    report = (root / "runs" / "report" / "report.md").read_text()
    assert summary.report and all(
        j.model.split("/")[-1] in report or j.name in report for j in done
    )
    assert sorted(p.suffix for p in (root / "runs" / "report").iterdir()).count(".png") >= 2


def test_unknown_step_options_are_named() -> None:
    from mobq import benchmark as bench

    with pytest.raises(InputError, match=r"unknown option.*prompt_len.*allowed: prompt_tokens"):
        sweep._options("bench", bench.BenchConfig, {"prompt_len": 8}, {})


@pytest.mark.slow
def test_a_broken_model_fails_alone_with_its_error(swept) -> None:
    root, _, summary = swept
    failed = [j for j in summary.jobs if j.status == "failed"]
    assert {j.name for j in failed} == {"qwen3-broken-8da4w-ctx64", "qwen3-broken-fp32-ctx64"}
    assert all("not a readable safetensors file" in j.error for j in failed)
    assert not (root / "runs" / "qwen3-broken-8da4w-ctx64" / "model.pte").exists()


@pytest.mark.slow
def test_summary_json_lists_every_job(swept) -> None:
    root, _, _ = swept
    data = json.loads((root / "runs" / "summary.json").read_text())
    assert len(data["jobs"]) == 4 and data["host"]["cpu"]
    for job in data["jobs"]:
        assert {"model", "scheme", "ctx", "status", "out", "error", "figures"} <= set(job)


@pytest.mark.slow
def test_rerun_reports_finished_cells_as_cached(swept) -> None:
    root, plan, _ = swept
    result = CliRunner().invoke(
        cli, ["--quiet", "sweep", str(plan), "--out", str(root / "runs"), "--json", "--cpus", "2"]
    )
    summary, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])
    statuses = {j["name"]: j["status"] for j in summary["jobs"]}
    assert result.exit_code == 1  # the broken model still fails
    assert [s for n, s in statuses.items() if "broken" not in n] == ["cached"] * 2


def test_dry_run_shows_the_memory_aware_schedule(tmp_path: Path, tiny_tied: Path) -> None:
    plan = write_plan(
        tmp_path / "plan.yaml",
        models=[str(tiny_tied), "qwen3-0.6b", "qwen3-8b"],
        schemes=["8da4w"],
        ctx=[512],
    )
    result = CliRunner().invoke(cli, ["--quiet", "sweep", str(plan), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["too_large"] == ["qwen3-8b-8da4w-ctx512"]  # ~50 GB estimated, beyond this machine
    waves = data["waves"]
    assert sorted(n for w in waves for n in w) == [
        "qwen3-0.6b-8da4w-ctx512",
        "qwen3-tied-8da4w-ctx512",
    ]
    estimates = {j["name"]: j["estimate"] for j in data["jobs"]}
    assert estimates["qwen3-0.6b-8da4w-ctx512"]["parameters"] == pytest.approx(0.6e9, rel=0.02)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"models": ["x"], "schems": ["8da4w"]}, "unknown key 'schems'"),
        ({"models": ["x"], "schemes": ["int3"]}, "unknown scheme 'int3'"),
        ({"models": []}, "models"),
        ({"models": ["x"], "ctx": [0]}, "context lengths must be positive"),
        ({"models": ["x"], "options": {"random_weight": True}}, "unknown export option"),
        ({"models": ["x"], "steps": ["export", "deploy"]}, "steps"),
    ],
)
def test_bad_plans_are_one_line_errors(tmp_path: Path, plan: dict, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        sweep.load_plan(write_plan(tmp_path / "plan.yaml", **plan))


def test_cell_names() -> None:
    assert sweep.cell_name("qwen3-4b", "8da4w", 1024) == "qwen3-4b-8da4w-ctx1024"
    assert sweep.cell_name("Qwen/Qwen3-8B", "fp32", 512) == "qwen3-8b-fp32-ctx512"
