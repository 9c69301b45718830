"""mobq bundle: an export copied into an app, hash-checked, atomically, with a memory fit check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq import fsutil
from mobq.bundle import (
    MODEL_SUBDIR,
    PROMPT_SET,
    RUNTIME_ALLOWANCE_BYTES,
    MemoryNeed,
    bundle,
    check_fit,
    memory_need,
    phone_classes,
)
from mobq.cli import cli
from mobq.errors import InputError, OutputExists, ResourceError

GB = 1024**3


@pytest.fixture()
def app(tmp_path: Path) -> Path:
    directory = tmp_path / "android_app"
    directory.mkdir()
    return directory


def test_bundle_copies_every_manifest_file_with_matching_hashes(
    export_tied_8da4w, app: Path
) -> None:
    export_dir, manifest = export_tied_8da4w
    result = bundle("android", export_dir, app)
    model_dir = app / MODEL_SUBDIR["android"]
    assert Path(result.model_dir) == model_dir
    copied = {Path(f.destination).name: f for f in result.files}
    assert set(copied) == {e.path for e in manifest.files} | {"manifest.json", "prompts.json"}
    for entry in manifest.files:
        assert (
            fsutil.sha256_file(model_dir / entry.path) == entry.sha256 == copied[entry.path].sha256
        )
    assert json.loads((model_dir / "manifest.json").read_text()) == json.loads(
        (export_dir / "manifest.json").read_text()
    )
    assert not [p for p in app.rglob("*") if p.name.startswith(fsutil.TMP_PREFIX)]


def test_memory_need_is_program_plus_kv_cache_at_the_exports_context(export_tied_8da4w) -> None:
    _, manifest = export_tied_8da4w
    p = manifest.model.params
    need = memory_need(manifest)
    kv = 2 * p["n_layers"] * p["n_kv_heads"] * p["head_dim"] * manifest.runtime.max_context_len * 4
    assert need.kv_cache_bytes == kv
    assert need.program_bytes == manifest.file("program").bytes
    assert need.total_bytes == need.program_bytes + kv + RUNTIME_ALLOWANCE_BYTES
    fits = check_fit("ios", need)
    assert [f.phone for f in fits] == [c.name for c in phone_classes()["ios"]]
    assert all(f.fits for f in fits)


def test_model_too_large_for_every_phone_class_is_refused() -> None:
    # 6.75 GB: over every Android class (at most 0.55 x 12 GB), under the 12 GB iPhone's 0.65.
    need = MemoryNeed(
        program_bytes=int(5.5 * GB), kv_cache_bytes=GB, runtime_bytes=RUNTIME_ALLOWANCE_BYTES
    )
    with pytest.raises(ResourceError, match=r"KV cache 1024 MB .* smaller --ctx"):
        check_fit("android", need)
    assert any(f.fits for f in check_fit("ios", need))
    with pytest.raises(ResourceError):
        check_fit("ios", need, phone="iphone-6gb")
    with pytest.raises(InputError, match="unknown phone class 'pixel-99'"):
        check_fit("android", need, phone="pixel-99")


def test_existing_bundle_needs_force_and_is_replaced_whole(export_tied_8da4w, app: Path) -> None:
    export_dir, _ = export_tied_8da4w
    model_dir = app / MODEL_SUBDIR["android"]
    model_dir.mkdir(parents=True)
    (model_dir / "old-model.pte").write_bytes(b"stale")
    with pytest.raises(OutputExists, match="--force"):
        bundle("android", export_dir, app)
    bundle("android", export_dir, app, force=True)
    assert not (model_dir / "old-model.pte").exists()
    assert (model_dir / "model.pte").is_file()


def test_modified_export_is_refused_and_leaves_the_app_untouched(
    export_tied_8da4w, tmp_path: Path, app: Path
) -> None:
    export_dir, _ = export_tied_8da4w
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    data = bytearray((copy / "model.pte").read_bytes())
    data[-1] ^= 0xFF  # same size, different content: only the hash can tell
    (copy / "model.pte").write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match the sha256"):
        bundle("ios", copy, app)
    assert not (app / MODEL_SUBDIR["ios"]).exists()
    assert not [p for p in app.rglob("*") if p.name.startswith(fsutil.TMP_PREFIX)]


def test_missing_app_dir_and_missing_export_are_one_line_errors(
    export_tied_8da4w, tmp_path: Path
) -> None:
    export_dir, _ = export_tied_8da4w
    with pytest.raises(InputError, match=r"app directory .* does not exist"):
        bundle("ios", export_dir, tmp_path / "nowhere")
    with pytest.raises(InputError, match="no manifest"):
        bundle("ios", tmp_path, tmp_path)


def test_cli_bundle_json_reports_destinations_and_fit(export_tied_8da4w, tmp_path: Path) -> None:
    export_dir, manifest = export_tied_8da4w
    app_dir = tmp_path / "ios_app"
    app_dir.mkdir()
    out = CliRunner().invoke(
        cli, ["-q", "bundle", "ios", str(export_dir), "--app-dir", str(app_dir), "--json"]
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["target"] == "ios"
    assert payload["ctx"] == manifest.runtime.max_context_len
    assert payload["model_dir"] == str(app_dir / MODEL_SUBDIR["ios"])
    assert {f["role"] for f in payload["files"]} == {e.role for e in manifest.files} | {
        "manifest",
        "prompts",
    }
    assert {f["phone"] for f in payload["fits"]} == {c.name for c in phone_classes()["ios"]}
    human = CliRunner().invoke(
        cli, ["-q", "bundle", "ios", str(export_dir), "--app-dir", str(app_dir), "--force"]
    )
    assert human.exit_code == 0, human.output
    assert "KV cache" in human.output and "iphone-8gb" in human.output


def test_prompts_json_carries_token_counts_from_the_exports_tokenizer(
    export_tied_8da4w, app: Path
) -> None:
    """The iOS runner reports no token counts: the bundle counts the benchmark prompts."""
    from tokenizers import Tokenizer

    export_dir, manifest = export_tied_8da4w
    bundle("android", export_dir, app)
    prompts = json.loads((app / MODEL_SUBDIR["android"] / "prompts.json").read_text())
    golden = json.loads(PROMPT_SET.read_text())
    assert prompts["name"] == golden["name"]
    assert [p["text"] for p in prompts["prompts"]] == [p["text"] for p in golden["prompts"]]
    tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
    chat = manifest.runtime.chat_format
    for prompt in prompts["prompts"]:
        rendered = chat.render([("user", prompt["text"])], think=False) if chat else prompt["text"]
        # The chat wrapper adds tokens; the count is of the whole rendered prompt.
        assert prompt["prompt_tokens"] == len(
            tokenizer.encode(rendered, add_special_tokens=False).ids
        )
        assert prompt["prompt_tokens"] > len(
            tokenizer.encode(prompt["text"], add_special_tokens=False).ids
        )
    counts = [p["prompt_tokens"] for p in prompts["prompts"]]
    assert counts == sorted(counts) and counts[0] > 0
