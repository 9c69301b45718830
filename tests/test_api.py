"""The Python API: docs/api.md's examples run as written, against a stand-in Hub for its Hub part."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import mobq
from fakehub import FakeHub
from mobq.errors import InputError

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_examples_in_docs_api_md_run(
    export_tied_8da4w, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every python block of docs/api.md, in order, in one namespace, in an empty directory.

    The doc's tiny model is the shared `export_tied_8da4w` model (same architecture, spec and
    seed), so its export stages come from the run's cache instead of exporting anew."""
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    export, model, result = namespace["export"], namespace["model"], namespace["result"]
    assert (tmp_path / "exports" / "tiny-qwen3" / "model.pte").is_file()
    assert export.manifest.verification["passed"]
    assert all(stage.cached for stage in export.manifest.stages)  # the doc reused the run's cache
    assert result.decode_tokens_per_sec > 0 and result.prompt_tokens == 16
    # The last blocks published the export and loaded it back from the (stand-in) Hub.
    assert "me/tiny-qwen3-8da4w" in fake_hub.repos
    assert "models--me--tiny-qwen3-8da4w" in str(model.path)
    assert (model.path / "model.pte").read_bytes() == (export.path / "model.pte").read_bytes()
    assert "decode" in capsys.readouterr().out


def test_the_public_names_are_documented_and_typed() -> None:
    assert set(mobq.__all__) == {
        "Export",
        "Model",
        "__version__",
        "bench",
        "export",
        "load",
        "locate",
        "publish",
    }
    for name in mobq.__all__:
        if name == "__version__":
            continue
        obj = getattr(mobq, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
        assert f"mobq.{name}" in DOC.read_text() or name in DOC.read_text(), name
        if callable(obj) and not inspect.isclass(obj):
            signature = inspect.signature(obj)
            assert signature.return_annotation is not inspect.Signature.empty, name
            assert all(
                p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
            ), name


def test_export_and_bench_stay_the_functions_after_the_stage_modules_load() -> None:
    """No stage module is named like an API function, so importing one replaces nothing."""
    import mobq.benchmark
    import mobq.pipeline
    import mobq.pte

    assert inspect.isfunction(mobq.export) and inspect.isfunction(mobq.bench)
    assert inspect.signature(mobq.bench).return_annotation == "list[BenchResult]"
    assert inspect.signature(mobq.export).return_annotation in ("Export", mobq.Export)


def test_api_errors_are_mobq_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no manifest"):
        mobq.load(tmp_path)
    with pytest.raises(InputError, match="--revision applies to a Hub repo id"):
        mobq.load(tmp_path, revision="v1")
    with pytest.raises(InputError, match="int3"):
        mobq.export(str(tmp_path), scheme="int3")
