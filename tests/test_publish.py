"""`mobq publish` against a stand-in for the Hub API: one commit, card rendered for the repo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mobq import publish, quantize
from mobq.cli import cli
from mobq.errors import InputError, StageError
from mobq.schemes import QuantOptions


class FakeHubApi:
    """Records what huggingface_hub.HfApi would have been asked; never touches the network."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.repos: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.repos.append({"repo_id": repo_id, **kwargs})
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, repo_id: str, operations: list[Any], **kwargs: Any) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        files = {}
        for op in operations:
            source = op.path_or_fileobj
            files[op.path_in_repo] = (
                source if isinstance(source, bytes) else Path(source).read_bytes()
            )
        self.commits.append({"repo_id": repo_id, "files": files, **kwargs})

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/abc123"

        return Info()


@pytest.fixture(scope="module")
def checkpoint(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "tiny-int4"
    quantize.run(
        tiny_untied, out, "int4-hqq", QuantOptions(32, target="cpu"), source_id="Qwen/Qwen3-8B"
    )
    (out / ".mobq-tmp-123-partial").write_text("left by a killed run")
    return out


def test_one_commit_holds_weights_tokenizer_and_the_card_for_this_repo(checkpoint: Path) -> None:
    api = FakeHubApi()
    result = publish.run(checkpoint, "me/Qwen3-8B-INT4", private=True, api=api)
    assert api.repos == [
        {"repo_id": "me/Qwen3-8B-INT4", "private": True, "exist_ok": True, "repo_type": "model"}
    ]
    (commit,) = api.commits
    files = commit["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert not any(name.startswith(".") for name in files)
    card = files["README.md"].decode()
    assert 'from_pretrained("me/Qwen3-8B-INT4"' in card and "USER/REPO" not in card
    # The local card is left as it was: the repo name exists only in what was uploaded.
    assert "USER/REPO" in (checkpoint / "README.md").read_text()
    assert files["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()
    assert result.url.endswith("/commit/abc123") and result.files[-1] == "README.md"


def test_a_checkpoint_mobq_did_not_make_keeps_its_own_readme(
    tiny_untied: Path, tmp_path: Path
) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_untied, plain)
    (plain / "README.md").write_text("my own card")
    api = FakeHubApi()
    publish.run(plain, "me/plain", api=api)
    assert api.commits[0]["files"]["README.md"] == b"my own card"


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "me/", "/x", "me/na me", "me/a..b"])
def test_bad_repo_ids_are_refused(checkpoint: Path, repo: str) -> None:
    with pytest.raises(InputError, match="USER/NAME"):
        publish.run(checkpoint, repo, api=FakeHubApi())


def test_a_directory_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match=r"no \.safetensors"):
        publish.run(tmp_path, "me/x", api=FakeHubApi())


def test_the_token_comes_from_hf_token(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(InputError, match="HF_TOKEN"):
        publish.run(checkpoint, "me/x")
    seen: list[str] = []
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(publish, "make_api", lambda token: seen.append(token) or FakeHubApi())
    publish.run(checkpoint, "me/x")
    assert seen == ["hf_test"]


def _cli(monkeypatch: pytest.MonkeyPatch, api: FakeHubApi, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(publish, "make_api", lambda token: api)
    result = CliRunner().invoke(cli, ["--quiet", "publish", *args])
    return result.exit_code, result.output


def test_cli_publishes_and_reports_json(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeHubApi()
    code, output = _cli(monkeypatch, api, str(checkpoint), "--repo", "me/tiny", "--json")
    assert code == 0, output
    reported = json.loads(output)
    assert reported["repo_id"] == "me/tiny" and "model.safetensors" in reported["files"]
    assert api.commits[0]["commit_message"] == f"Upload {checkpoint.name} with mobq"


def test_a_hub_error_is_one_line(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from huggingface_hub.errors import HfHubHTTPError

    response = SimpleNamespace(headers={}, request=None)  # all the error reads of a response
    error = HfHubHTTPError("403 Forbidden: no write access to me/tiny", response=response)
    api = FakeHubApi(fail_with=error)
    code, output = _cli(monkeypatch, api, str(checkpoint), "--repo", "me/tiny")
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == StageError.exit_code and len(lines) == 1, output
    assert "upload to me/tiny failed: 403 Forbidden" in lines[0]
