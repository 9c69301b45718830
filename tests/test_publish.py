"""`mobq publish` of an int4-hqq server checkpoint, against the stand-in Hub (tests/fakehub.py):
one commit, the card rendered for the repo. Exports are covered in test_hub.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakehub import FakeHub
from mobq import hub, quantize, upload
from mobq.cli import cli
from mobq.errors import InputError, StageError
from mobq.schemes import SCHEMES, QuantOptions


@pytest.fixture(scope="module")
def checkpoint(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "tiny-int4"
    quantize.quantize_checkpoint(
        tiny_untied,
        out,
        SCHEMES["int4-hqq"],
        QuantOptions(32, target="cpu"),
        source_id="Qwen/Qwen3-8B",
    )
    (out / ".mobq-tmp-123-partial").write_text("left by a killed run")
    return out


def test_one_commit_holds_weights_tokenizer_and_the_card_for_this_repo(
    fake_hub: FakeHub, checkpoint: Path
) -> None:
    result = upload.run(checkpoint, "me/Qwen3-8B-INT4", private=True)
    repo = fake_hub.repos["me/Qwen3-8B-INT4"]
    assert repo.private and len(repo.commits) == 2  # the Hub's .gitattributes, then ours
    files = repo.commits[-1]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert not any(name.startswith(".mobq") for name in files)
    card = files["README.md"].decode()
    assert 'from_pretrained("me/Qwen3-8B-INT4"' in card and "USER/REPO" not in card
    assert card.startswith("---\nbase_model:\n- Qwen/Qwen3-8B\n")
    # The local card is left as it was: the repo name exists only in what was uploaded.
    assert "USER/REPO" in (checkpoint / "README.md").read_text()
    assert files["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()
    assert result.kind == "checkpoint" and "/commit/" in result.url


def test_a_checkpoint_mobq_did_not_make_keeps_its_own_readme(
    fake_hub: FakeHub, tiny_untied: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(tiny_untied, plain)
    (plain / "README.md").write_text("my own card")
    upload.run(plain, "me/plain")
    assert fake_hub.repos["me/plain"].commits[-1]["README.md"] == b"my own card"


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "me/", "/x", "me/na me", "me/a..b"])
def test_bad_repo_ids_are_refused(fake_hub: FakeHub, checkpoint: Path, repo: str) -> None:
    with pytest.raises(InputError, match="USER/NAME"):
        upload.run(checkpoint, repo)
    assert not fake_hub.requests


def test_a_directory_without_weights_is_refused(fake_hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match=r"no \.safetensors"):
        upload.run(tmp_path, "me/x")


def test_the_token_is_huggingface_hubs(
    fake_hub: FakeHub, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_TOKEN or the one `hf auth login` stored: whatever huggingface_hub.get_token finds."""
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants as constants

    stored = checkpoint.parent / "stored-token"
    stored.write_text("hf_from_login")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(stored))
    upload.run(checkpoint, "me/x")
    writes = fake_hub.write_tokens()
    assert writes and set(writes) == {"Bearer hf_from_login"}
    monkeypatch.setattr(hub, "token", lambda: None)
    with pytest.raises(InputError, match="hf auth login"):
        upload.run(checkpoint, "me/x")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", "publish", *args])
    return result.exit_code, result.output


def test_cli_publishes_and_reports_json(fake_hub: FakeHub, checkpoint: Path) -> None:
    code, output = _cli(str(checkpoint), "me/tiny", "--json")
    assert code == 0, output
    reported = json.loads(output)
    assert reported["repo_id"] == "me/tiny" and "model.safetensors" in reported["files"]
    assert "model.safetensors" in fake_hub.repos["me/tiny"].commits[-1]
    code, output = _cli(str(checkpoint), "--repo", "me/tiny2")  # the older spelling
    assert code == 0 and "me/tiny2" in fake_hub.repos, output


def test_a_hub_error_is_one_line(fake_hub: FakeHub, checkpoint: Path) -> None:
    fake_hub.refuse_commits = True
    code, output = _cli(str(checkpoint), "me/tiny")
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == StageError.exit_code and len(lines) == 1, output
    assert "upload to me/tiny failed" in lines[0] and "permissions" in lines[0]
