"""The runner's tokenizer splits chat prompts exactly as transformers does, or mobq says why not.

ExecuTorch's TextLLMRunner and the apps tokenize with pytorch_tokenizers' C++ HFTokenizer,
loading tokenizer.json. For every family's real tokenizer the ids of chat-templated prompts
(unicode, whitespace runs, code, emoji, special tokens) must equal the Hugging Face ids.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_tokenizer
from mobq import metadata, tinylm
from mobq.errors import InputError

CONTENTS = (
    "Hi there! 你好 🙂",
    "café, naïve, Ünïcödé — ¿qué tal? русский текст, العربية",
    "def f(x):\n    return x  # two  spaces\n\tindented",
    "trailing spaces   \n\n\nand blank lines",
    "emoji 👍🏽 🇫🇷 👨‍👩‍👧 and numbers 1234567 3.14",
)


def phi4_tokenizer(out: Path) -> Path:
    from test_families import PHI4_ADDED, PHI4_TOKENIZER_CONFIG

    return tinylm.extend_tokenizer(
        shared_tokenizer("o200k"), out, PHI4_ADDED, PHI4_TOKENIZER_CONFIG
    )


def _tokenizer(name: str, tmp_path: Path) -> Path:
    return phi4_tokenizer(tmp_path / "phi4") if name == "phi4" else shared_tokenizer(name)


def _chat_prompts(tokenizer_dir: Path) -> list[str]:
    """Prompts as an app builds them from the derived format, special tokens included."""
    fmt = metadata.derive_prompt_format(tokenizer_dir)
    assert fmt is not None
    prompts = [fmt.render([("user", text)]) for text in CONTENTS]
    prompts.append(fmt.render([("user", CONTENTS[0]), ("assistant", CONTENTS[2]), ("user", "ok")]))
    return prompts


@pytest.mark.parametrize(
    ("name", "changed"), [("llama3_1", False), ("phi4", False), ("qwen3", True)]
)
def test_runner_ids_of_chat_prompts_equal_transformers(
    name: str, changed: bool, tmp_path: Path
) -> None:
    tokenizer_dir = _tokenizer(name, tmp_path)
    prompts = _chat_prompts(tokenizer_dir)
    # write_runner_tokenizer refuses a file the runner would split differently on any text.
    changes = metadata.write_runner_tokenizer(
        tokenizer_dir, tmp_path / "tokenizer.json", (*metadata.RUNNER_PROBES, *prompts)
    )
    assert bool(changes) == changed  # only Qwen3's NFC normalizer needs dropping


def test_qwen3_nfc_normalizer_is_what_the_runner_gets_wrong() -> None:
    """pytorch_tokenizers' NFC strips accents, hence the copy without it above."""
    original = shared_tokenizer("qwen3") / "tokenizer.json"
    bad = metadata.runner_tokenizer_mismatches(original, ("café", "naïve", "plain"))
    assert [m.text for m in bad] == ["café", "naïve"]


def test_gemma3_whitespace_runs_split_differently_and_are_refused(tmp_path: Path) -> None:
    """pytorch_tokenizers 1.5.0 never merges Gemma's '▁▁' runs; the export must not ship it."""
    tokenizer_dir = shared_tokenizer("gemma3")
    with pytest.raises(InputError) as info:
        metadata.write_runner_tokenizer(tokenizer_dir, tmp_path / "tokenizer.json", ("a  b", "hi"))
    # a ▁ ▁b for the runner, a ▁▁ b for transformers
    assert str(info.value).endswith(
        "splits 1 of 2 probe strings of "
        f"{tokenizer_dir}/tokenizer.json unlike transformers, e.g. 'a  b': runner "
        "[236746, 236743, 518] vs [236746, 138, 236763]; the app would feed the model "
        "different tokens than it was trained on"
    )
    assert not (tmp_path / "tokenizer.json").exists()
