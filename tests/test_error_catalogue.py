"""Every user error: one clear line, a non-zero exit, no traceback, nothing half-written.

Each case builds the bad input, runs the CLI as a user would and checks the single line the
user sees. The list doubles as the catalogue in docs/errors.md.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mobq.cli import cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *[str(a) for a in args]])
    return result.exit_code, result.output


def check_one_line(code: int, output: str, expected: str, exit_code: int = 2) -> None:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert expected in lines[0], output
    assert code == exit_code, output


def copy_model(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name not in skip:
            shutil.copyfile(path, dst / path.name)
    return dst


def _config_dir(tmp_path: Path, config: object) -> Path:
    directory = tmp_path / "model"
    config.save_pretrained(str(directory))  # type: ignore[attr-defined]
    return directory


def bert_dir(tmp_path: Path, _: Path) -> Path:
    from transformers import BertConfig

    return _config_dir(tmp_path, BertConfig(architectures=["BertForMaskedLM"]))


def gpt2_dir(tmp_path: Path, _: Path) -> Path:
    from transformers import GPT2Config

    return _config_dir(tmp_path, GPT2Config(architectures=["GPT2LMHeadModel"]))


def corrupt_weights(tmp_path: Path, tiny: Path) -> Path:
    model = copy_model(tiny, tmp_path / "model")
    (model / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    return model


def truncated_weights(tmp_path: Path, tiny: Path) -> Path:
    model = copy_model(tiny, tmp_path / "model")
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    return model


def no_tokenizer(tmp_path: Path, tiny: Path) -> Path:
    return copy_model(tiny, tmp_path / "model", skip=("tokenizer.json",))


def small_vocab(tmp_path: Path, tiny: Path) -> Path:
    model = copy_model(tiny, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["vocab_size"] = 64
    (model / "config.json").write_text(json.dumps(config))
    return model


CASES: dict[str, tuple[Callable[[Path, Path], Path], tuple[str, ...], str]] = {
    "not a causal LM (BERT)": (bert_dir, (), "BertForMaskedLM is not a causal language model"),
    "unsupported architecture (GPT-2)": (
        gpt2_dir,
        (),
        "architecture GPT2LMHeadModel is not supported; supported:",
    ),
    "corrupt safetensors": (
        corrupt_weights,
        (),
        "is not a readable safetensors file (corrupt or truncated?)",
    ),
    "truncated safetensors": (
        truncated_weights,
        (),
        "is not a readable safetensors file (corrupt or truncated?)",
    ),
    "missing tokenizer": (no_tokenizer, (), "missing tokenizer"),
    "tokenizer/model vocab mismatch": (small_vocab, (), "tokenizer/model vocab mismatch"),
    "ctx zero": (
        lambda tmp, tiny: tiny,
        ("--ctx", "0"),
        "--ctx must be a positive number of tokens, got 0",
    ),
    "ctx negative": (
        lambda tmp, tiny: tiny,
        ("--ctx", "-8"),
        "--ctx must be a positive number of tokens, got -8",
    ),
    "ctx beyond max positions": (
        lambda tmp, tiny: tiny,
        ("--ctx", "99999"),
        "exceeds the model's max_position_embeddings",
    ),
    "scheme the model cannot take": (
        lambda tmp, tiny: tiny,
        ("--group-size", "48"),
        "scheme 8da4w with group size 48 fits none of this model's linears",
    ),
    "override of the wrong module kind": (
        lambda tmp, tiny: tiny,
        ("--override", "model.embed_tokens=8da4w"),
        "8da4w applies to linear only",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_model_input(case: str, tiny_tied: Path, tmp_path: Path) -> None:
    build, extra, expected = CASES[case]
    model = build(tmp_path, tiny_tied)
    out = tmp_path / "out"
    code, output = invoke("export", model, "--out", out, *extra)
    check_one_line(code, output, expected)
    assert not out.exists()


def test_not_enough_disk_is_checked_before_starting(
    tiny_tied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as real_shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("mobq.fsutil.shutil.disk_usage", lambda _: usage(10**9, 10**9, 1024))
    code, output = invoke("export", tiny_tied, "--out", tmp_path / "out")
    monkeypatch.setattr("mobq.fsutil.shutil.disk_usage", real_shutil.disk_usage)
    check_one_line(code, output, "not enough free disk")
    assert not (tmp_path / "out").exists()


def test_planted_pickle_is_never_unpickled(tmp_path: Path, tiny_tied: Path) -> None:
    """A pytorch_model.bin whose unpickling would run a command: refused, and nothing runs."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, (f"touch {marker}",))

    model = copy_model(tiny_tied, tmp_path / "model", skip=("model.safetensors",))
    with open(model / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"model.embed_tokens.weight": Exploit()}, handle)
    code, output = invoke("export", model, "--out", tmp_path / "out")
    check_one_line(code, output, "refused to load")
    assert "safetensors" in output
    assert not marker.exists()


def test_tensor_only_pickle_loads_safely(tmp_path: Path, tiny_tied: Path) -> None:
    """A legacy .bin holding only tensors is read with weights_only=True."""
    import torch
    from safetensors.torch import load_file

    from mobq.checkpoint import CheckpointReader

    model = copy_model(tiny_tied, tmp_path / "model", skip=("model.safetensors",))
    tensors = load_file(str(tiny_tied / "model.safetensors"))
    torch.save(tensors, model / "pytorch_model.bin")
    with CheckpointReader(model) as reader:
        assert set(reader.names) == set(tensors)


def test_existing_output_needs_force(tiny_tied: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    code, output = invoke("export", tiny_tied, "--out", out)
    check_one_line(code, output, "already exists and is not empty; pass --force")
    assert (out / "notes.txt").read_text() == "keep"


PROGRAM_COMMANDS = {
    "run": ("--prompt", "hi"),
    "bench": ("-p", "8", "-n", "4", "--warmup", "0", "--reps", "1"),
    "eval": ("--max-tokens", "32"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(PROGRAM_COMMANDS))
@pytest.mark.parametrize("damage", ["garbage", "truncated", "resized"])
def test_corrupt_program_given_to_run_bench_eval(
    export_tied_8da4w, tmp_path: Path, damage: str, command: str
) -> None:
    src, _ = export_tied_8da4w
    out = shutil.copytree(src, tmp_path / "export")
    pte = out / "model.pte"
    data = pte.read_bytes()
    if damage == "garbage":
        pte.write_bytes(b"\x00" * len(data))
        expected = "not an ExecuTorch program"
    elif damage == "truncated":
        pte.write_bytes(data[: len(data) // 2])
        expected = "truncated or replaced"
    else:  # same size, wrecked body: only the runtime can tell
        pte.write_bytes(data[:64] + b"\x00" * (len(data) - 64))
        expected = "could not load"
    code, output = invoke(command, out, *PROGRAM_COMMANDS[command])
    check_one_line(code, output, expected)


def test_malformed_manifest_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"mobq_version": "0.1.0", "model": {"name": 3}})
    )
    code, output = invoke("run", tmp_path, "--prompt", "hi")
    check_one_line(code, output, "manifest.json: field 'model")
    (tmp_path / "manifest.json").write_text("{not json")
    code, output = invoke("run", tmp_path, "--prompt", "hi")
    check_one_line(code, output, "is not valid JSON")


def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(cli, ["--quiet", "--debug", "export", "./no/such/dir"])
    assert result.exit_code != 0
    assert result.exception is not None and "no such directory" in str(result.exception)


def test_hub_repository_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in hub on loopback answers 404 RepoNotFound, as huggingface.co does for a missing repo."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("X-Error-Message", "Repository not found")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        import huggingface_hub.constants as hub_constants

        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        code, output = invoke("export", "nobody/does-not-exist")
    finally:
        server.shutdown()
    check_one_line(code, output, "hub repository nobody/does-not-exist not found")
