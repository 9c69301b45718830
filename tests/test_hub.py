"""Published exports: `mobq publish` -> `mobq run ORG/NAME` against a stand-in Hub on 127.0.0.1.

huggingface_hub's own client code (upload_folder, snapshot_download, hf_hub_download, the HF
cache) talks to tests/fakehub.py through HF_ENDPOINT; nothing leaves the machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakehub import FakeHub
from mobq import hub, upload
from mobq.cli import cli
from mobq.errors import CheckpointError, InputError, ModelNotFound

REPO = "me/tiny-8da4w"


@pytest.fixture(scope="module")
def export_with_bench(export_tied_8da4w, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny export plus a bench.json (results from the shared schema's example)."""
    out = tmp_path_factory.mktemp("pub") / "tiny-8da4w"
    shutil.copytree(export_tied_8da4w[0], out)
    example = Path(__file__).resolve().parents[1] / "docs" / "schema" / "examples"
    bench = [json.loads(p.read_text()) for p in sorted(example.glob("*host*.json"))][:1]
    (out / "bench.json").write_text(json.dumps(bench))
    return out


def _go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_publish_then_run_from_the_hub(
    fake_hub: FakeHub, export_with_bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = upload.run(export_with_bench, REPO)
    assert result.kind == "export"
    initial, files = fake_hub.repos[REPO].commits  # the Hub's .gitattributes, then one commit
    manifest = json.loads((export_with_bench / "manifest.json").read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    assert set(files) == listed | {"manifest.json", "README.md", "bench.json", *initial}
    assert files["model.pte"] == (export_with_bench / "model.pte").read_bytes()
    writes = fake_hub.write_tokens()
    assert writes and all(t == "Bearer hf_fake_write_token" for t in writes)
    card = files["README.md"].decode()
    front = card.split("---")[1]
    assert "library_name: executorch" in front and "pipeline_tag: text-generation" in front
    sqnr = manifest["verification"]["sqnr_db_min"]
    assert f"{sqnr:.1f}" in card and f"mobq run {REPO}" in card and "decode tok/s" in card
    assert not (export_with_bench / "README.md").exists()  # nothing written locally

    # Download through the HF cache, sha256-checked, then generate from it.
    code = CliRunner().invoke(
        cli, ["--quiet", "run", REPO, "-p", "Hello", "--raw", "--max-new-tokens", "4", "--json"]
    )
    assert code.exit_code == 0, code.output
    assert json.loads(code.output)["tokens"] >= 1
    fetched = hub.fetch_export(REPO)
    assert (fetched / "model.pte").read_bytes() == files["model.pte"]

    # Offline: served from the cache alone, no request reaches the Hub.
    _go_offline(monkeypatch)
    asked = len(fake_hub.requests)
    assert hub.fetch_export(REPO) == fetched
    assert len(fake_hub.requests) == asked


def test_a_file_that_does_not_match_the_manifest_is_refused(
    fake_hub: FakeHub, export_with_bench: Path
) -> None:
    upload.run(export_with_bench, REPO)
    pte = fake_hub.repos[REPO].commits[-1]["model.pte"]
    fake_hub.served["model.pte"] = pte[:-1] + bytes([pte[-1] ^ 1])  # same size, one bit off
    with pytest.raises(
        CheckpointError, match=r"model\.pte of me/tiny-8da4w does not match its manifest"
    ):
        hub.fetch_export(REPO)
    runner = CliRunner().invoke(cli, ["--quiet", "bench", REPO, "-p", "8", "-n", "2"])
    lines = [line for line in runner.output.splitlines() if line.strip()]
    assert runner.exit_code == CheckpointError.exit_code and len(lines) == 1, runner.output


def test_revision_pinning_and_offline_misses(
    fake_hub: FakeHub, export_with_bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload.run(export_with_bench, REPO)
    first = fake_hub.head(REPO)
    (export_with_bench / "bench.json").rename(export_with_bench / "bench.json.off")
    try:
        upload.run(export_with_bench, REPO, message="without bench")
    finally:
        (export_with_bench / "bench.json.off").rename(export_with_bench / "bench.json")
    assert fake_hub.head(REPO) != first
    assert (hub.fetch_export(REPO, revision=first) / "bench.json").is_file()
    assert not (hub.fetch_export(REPO) / "bench.json").exists()
    with pytest.raises(ModelNotFound, match="revision nope of me/tiny-8da4w not found"):
        hub.fetch_export(REPO, revision="nope")
    _go_offline(monkeypatch)
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE is set"):
        hub.fetch_export("me/never-downloaded")


def test_a_repo_that_is_not_an_export_is_refused(fake_hub: FakeHub, tiny_untied: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi(token="hf_x")
    api.create_repo("me/plain")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="me/plain")
    with pytest.raises(InputError, match=r"has no manifest\.json: it is not a mobq export"):
        hub.fetch_export("me/plain")


def test_publishing_needs_a_token(
    fake_hub: FakeHub, export_with_bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(hub, "token", lambda: None)  # and no `hf auth login` token stored
    result = CliRunner().invoke(cli, ["--quiet", "publish", str(export_with_bench), REPO])
    assert result.exit_code == InputError.exit_code
    assert "hf auth login" in result.output and not fake_hub.requests


def test_a_tampered_local_export_is_not_published(
    fake_hub: FakeHub, export_with_bench: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(export_with_bench, bad)
    (bad / "tokenizer.json").write_text((bad / "tokenizer.json").read_text().replace(" ", "  ", 1))
    with pytest.raises(CheckpointError):
        upload.run(bad, REPO)
    assert not fake_hub.requests


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("me/tiny-8da4w", True),
        ("./me/x", False),
        ("a/b/c", False),
        ("me/na me", False),
        ("plain", False),
    ],
)
def test_what_counts_as_a_repo_id(ref: str, expected: bool) -> None:
    assert hub.is_repo_id(ref) is expected


def test_a_missing_export_under_a_local_folder_is_not_taken_for_a_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exports").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not hub.is_repo_id("exports/qwen3-typo")
    result = CliRunner().invoke(cli, ["--quiet", "run", "exports/qwen3-typo", "-p", "x"])
    assert result.exit_code == 2 and "no manifest at exports/qwen3-typo" in result.output


def test_downloads_announce_their_size_then_count_bytes(
    fake_hub: FakeHub, export_with_bench: Path
) -> None:
    from contextlib import contextmanager

    from mobq import progress

    class Recorder(progress.SilentReporter):
        def __init__(self) -> None:
            self.lines: list[str] = []
            self.tasks: list[tuple[str, int | None, str, list[int]]] = []

        def info(self, message: str) -> None:
            self.lines.append(message)

        @contextmanager
        def task(self, description: str, total: int | None, unit: str = ""):
            steps: list[int] = []
            self.tasks.append((description, total, unit, steps))
            yield steps.append

    upload.run(export_with_bench, REPO)
    recorder = Recorder()
    progress.set_reporter(recorder)
    try:
        path = hub.fetch_export(REPO)
    finally:
        progress.set_reporter(progress.SilentReporter())
    size = sum(p.stat().st_size for p in path.iterdir())
    (announced,) = [line for line in recorder.lines if line.startswith(REPO)]
    assert f"{len(list(path.iterdir()))} files, {hub.human_size(size)}" in announced
    description, total, unit, steps = recorder.tasks[0]
    assert description == f"downloading {REPO}" and unit == "B"
    assert total == size == sum(steps)  # the total came first, then the bytes as they arrived


def test_an_existing_directory_is_never_taken_for_a_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "me" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not hub.is_repo_id("me/x")
