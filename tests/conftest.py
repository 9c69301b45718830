"""Shared fixtures: tiny random-weight models built from real architectures, exported once.

Exports take 30-150 s each on 2 cores, so every model and export here is built once per test
run and cached in a run-wide MOBQ_CACHE; tests only read them. `make test` runs pytest-xdist
workers (one test file per worker at a time): `build_once` makes the workers share each
model and export through a file lock instead of building one per worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from fakehub import fake_hub  # noqa: F401  (the stand-in Hub on 127.0.0.1: tests/fakehub.py)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TOKENIZERS = SHARED / "fixtures" / "tokenizers"


def shared_tokenizer(name: str) -> Path:
    path = TOKENIZERS / name
    if not (path / "tokenizer.json").is_file():
        pytest.skip(
            f"real {name} tokenizer fixture not available ({path} is absent: ../shared is not checked out)"
        )
    return path


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the whole run: every xdist worker gets the same one."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # each worker's basetemp is a child of the run's
    root = base / "run-shared"
    root.mkdir(exist_ok=True)
    return root


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """`build(path)` by the first worker that asks; the others wait for it and reuse it."""
    root = run_root(tmp_path_factory)
    target, done = root / name, root / f"{name}.done"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches and downloads go to a temp dir: tests never touch ~/.cache or the network."""
    root = run_root(tmp_path_factory) / "mobq-cache"
    root.mkdir(exist_ok=True)
    os.environ["MOBQ_CACHE"] = str(root)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(root / "hf")
    return root


def _tiny(tmp_path_factory: pytest.TempPathFactory, name: str, **spec: object) -> Path:
    from mobq import tinylm
    from mobq.recipes import get_recipe

    architecture = get_recipe("qwen3-0.6b").architecture
    return build_once(
        tmp_path_factory,
        f"models/{name}",
        lambda out: tinylm.build_tiny_model(architecture, out, spec=tinylm.TinySpec(**spec)),
    )


@pytest.fixture(scope="session")
def tiny_tied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 with tied embeddings, like Qwen3-0.6B and -4B."""
    return _tiny(tmp_path_factory, "qwen3-tied", tie_word_embeddings=True)


@pytest.fixture(scope="session")
def tiny_untied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 with its own lm_head, like Qwen3-8B."""
    return _tiny(tmp_path_factory, "qwen3-untied", tie_word_embeddings=False)


def export(model: Path, out: Path, **options: object):
    from mobq.pipeline import ExportRequest, export_model

    return export_model(
        ExportRequest(model=str(model), out=out, ctx=options.pop("ctx", 96), **options)
    )


def export_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, model: Path, **options: object
):
    """(out, manifest) of an export built once per run, whichever worker asks first."""
    from mobq.manifest import load_manifest

    out = build_once(tmp_path_factory, f"exports/{name}", lambda o: export(model, o, **options))
    return out, load_manifest(out)


@pytest.fixture(scope="session")
def export_tied_8da4w(tiny_tied: Path, tmp_path_factory: pytest.TempPathFactory):
    return export_once(tmp_path_factory, "tied-8da4w", tiny_tied, scheme="8da4w")


@pytest.fixture(scope="session")
def export_tied_fp32(tiny_tied: Path, tmp_path_factory: pytest.TempPathFactory):
    return export_once(tmp_path_factory, "tied-fp32", tiny_tied, scheme="fp32")


@pytest.fixture(scope="session")
def export_untied_8da4w(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory):
    return export_once(tmp_path_factory, "untied-8da4w", tiny_untied, scheme="8da4w")


@pytest.fixture(scope="session")
def tiny_qwen3_real_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 with the real Qwen3 vocabulary and tokenizer, and Qwen3's generation_config."""
    import json

    tokenizer = shared_tokenizer("qwen3")
    from mobq import tinylm
    from mobq.recipes import get_recipe

    architecture = get_recipe("qwen3-4b").architecture
    spec = tinylm.TinySpec(vocab_size=architecture["vocab_size"], tie_word_embeddings=True)

    def build(out: Path) -> None:
        tinylm.build_tiny_model(architecture, out, spec=spec, tokenizer_dir=tokenizer)
        # Qwen3's own generation_config.json: the chat model stops on <|im_end|> and <|endoftext|>.
        (out / "generation_config.json").write_text(
            json.dumps(
                {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643}
            )
        )

    return build_once(tmp_path_factory, "models/qwen3-realtok", build)
