"""Runtime metadata is derived from the model's own files, and the chat format is exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import shared_tokenizer
from mobq import metadata
from mobq.errors import InputError
from mobq.hfmodel import load_config

CONVERSATION = [
    ("system", "You are terse."),
    ("user", "Hi there! 你好 🙂"),
    ("assistant", "Hello."),
    ("user", "def f(x):\n\treturn x  # two  spaces"),
]


def _config(vocab: int) -> SimpleNamespace:
    return SimpleNamespace(vocab_size=vocab, max_position_embeddings=4096, eos_token_id=None)


def _template_render(tokenizer_dir: Path, turns: list[tuple[str, str]], **kwargs: object) -> str:
    tokenizer = metadata.load_auto_tokenizer(tokenizer_dir)
    messages = [{"role": role, "content": text} for role, text in turns]
    return metadata.render_chat(tokenizer, messages, add_generation_prompt=True, **kwargs)


def test_tiny_model_metadata_comes_from_its_generation_config(tiny_tied: Path) -> None:
    md = metadata.derive(tiny_tied, tiny_tied, load_config(tiny_tied))
    generation = json.loads((tiny_tied / "generation_config.json").read_text())
    assert md.eos_ids == generation["eos_token_id"]
    assert md.eos_tokens == ["<|im_end|>", "<|endoftext|>"]
    assert md.bos_id is None and not md.add_bos
    assert md.provenance["eos_ids"].startswith("generation_config.json")
    assert md.pte_constant_methods() == {"get_eos_ids": md.eos_ids}


def test_prompt_format_reproduces_the_chat_template(tiny_tied: Path) -> None:
    fmt = metadata.derive_prompt_format(tiny_tied)
    assert fmt is not None
    assert fmt.render(CONVERSATION) == _template_render(tiny_tied, CONVERSATION)
    assert fmt.render(CONVERSATION, think=False) == _template_render(
        tiny_tied, CONVERSATION, enable_thinking=False
    )


def test_qwen3_real_tokenizer_ids_and_thinking(tiny_qwen3_real_tokenizer: Path) -> None:
    model = tiny_qwen3_real_tokenizer
    md = metadata.derive(model, model, load_config(model))
    assert md.eos_ids == [151645, 151643]
    assert md.eos_tokens == ["<|im_end|>", "<|endoftext|>"]
    assert md.bos_id is None and not md.add_bos  # Qwen3 has no bos: nothing may be prepended
    fmt = md.prompt_format
    assert fmt is not None and fmt.think_open == "<think>"
    assert fmt.render(CONVERSATION) == _template_render(model, CONVERSATION)
    assert fmt.render(CONVERSATION, think=False) == _template_render(
        model, CONVERSATION, enable_thinking=False
    )


@pytest.mark.parametrize(
    ("name", "vocab", "eos", "bos"),
    [("llama3_1", 128256, [128009], 128000), ("gemma3", 262208, [106], 2)],
)
def test_other_real_tokenizers(name: str, vocab: int, eos: list[int], bos: int) -> None:
    tokenizer = shared_tokenizer(name)
    md = metadata.derive(tokenizer, tokenizer, _config(vocab))
    assert md.eos_ids == eos and md.bos_id == bos and md.add_bos
    turns = [t for t in CONVERSATION if t[0] != "system"]
    assert md.prompt_format is not None
    assert md.prompt_format.render(turns) == _template_render(tokenizer, turns)


def test_vocab_mismatch_is_refused(tiny_tied: Path) -> None:
    with pytest.raises(InputError, match="tokenizer/model vocab mismatch"):
        metadata.derive(tiny_tied, tiny_tied, _config(16))


def test_missing_tokenizer_is_a_clear_error(tiny_tied: Path, tmp_path: Path) -> None:
    shutil.copyfile(tiny_tied / "config.json", tmp_path / "config.json")
    with pytest.raises(InputError, match="missing tokenizer"):
        metadata.derive(tmp_path, tmp_path, _config(1024))
