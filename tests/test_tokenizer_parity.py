"""The runner's tokenizer splits chat prompts exactly as transformers does, or mobq says why not.

ExecuTorch's TextLLMRunner and the apps tokenize with pytorch_tokenizers' C++ HFTokenizer,
loading tokenizer.json. For every family's real tokenizer the ids of chat-templated prompts
(unicode, whitespace runs, code, emoji, special tokens) must equal the Hugging Face ids; where
the runner gets a construct wrong, mobq ships a rewritten copy and says what it changed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import shared_tokenizer
from mobq import metadata, tinylm

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


def _broader_texts() -> tuple[str, ...]:
    """Whitespace runs past the longest run token, long letter runs, seeded random mixes."""
    rng = random.Random(0)
    alphabet = list("ab xyz  \n\t.,!?-_'\"0123éüñ日本語😀👍🏽🇫🇷\u00a0\u2009\u3000")
    mixes = ["".join(rng.choices(alphabet, k=rng.randint(1, 60))) for _ in range(400)]
    runs = [" " * n for n in range(1, 41)] + ["a" + " " * n + "b" for n in range(1, 41)]
    return (*runs, *("x" * n for n in range(1, 300, 13)), "\t\t  \n\n \t", *mixes)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("llama3_1", None),
        ("phi4", None),
        ("qwen3", "dropped the NFC normalizer"),
        ("gemma3", "plain BPE tokens"),
    ],
)
def test_runner_ids_of_chat_prompts_equal_transformers(
    name: str, change: str | None, tmp_path: Path
) -> None:
    tokenizer_dir = _tokenizer(name, tmp_path)
    texts = (*metadata.RUNNER_PROBES, *_chat_prompts(tokenizer_dir), *_broader_texts())
    # write_runner_tokenizer refuses a file the runner would split differently on any text.
    changes = metadata.write_runner_tokenizer(tokenizer_dir, tmp_path / "tokenizer.json", texts)
    assert [change in c for c in changes] == ([True] if change else [])


def test_qwen3_nfc_normalizer_is_what_the_runner_gets_wrong() -> None:
    """pytorch_tokenizers' NFC strips accents, hence the copy without it above."""
    original = shared_tokenizer("qwen3") / "tokenizer.json"
    bad = metadata.runner_tokenizer_mismatches(original, ("café", "naïve", "plain"))
    assert [m.text for m in bad] == ["café", "naïve"]


def test_gemma3_whitespace_run_added_tokens_are_what_the_runner_gets_wrong() -> None:
    """'▁▁'... are added tokens: pytorch_tokenizers drops them from its merges, hence the copy."""
    original = shared_tokenizer("gemma3") / "tokenizer.json"
    bad = metadata.runner_tokenizer_mismatches(original, ("a  b", "   ", "hi"))
    # a ▁ ▁b for the runner, a ▁▁ b for transformers
    assert [(m.text, m.runner_ids, m.hf_ids) for m in bad] == [
        ("a  b", [236746, 236743, 518], [236746, 138, 236763]),
        ("   ", [236743, 236743, 236743], [139]),
    ]


def test_gemma3_literal_block_runs_next_to_spaces_are_the_one_difference_left(
    tmp_path: Path,
) -> None:
    """transformers matches a literal '▁▁' (U+2581) as an added token before normalizing."""
    tokenizer_dir = shared_tokenizer("gemma3")
    data, _ = metadata.runner_tokenizer_json(tokenizer_dir)
    rewritten = tmp_path / "tokenizer.json"
    rewritten.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    texts = ("a ▁▁ b", "a▁▁b", "x▁▁▁y", "a  b")
    bad = metadata.runner_tokenizer_mismatches(
        rewritten, texts, reference=tokenizer_dir / "tokenizer.json"
    )
    assert [m.text for m in bad] == ["a ▁▁ b"]
    # transformers itself splits the rewritten file as the original, literal runs aside.
    from tokenizers import Tokenizer

    before, after = (
        Tokenizer.from_file(str(p)) for p in (tokenizer_dir / "tokenizer.json", rewritten)
    )
    for text in (*metadata.RUNNER_PROBES, *_chat_prompts(tokenizer_dir), *_broader_texts()):
        assert after.encode(text).ids == before.encode(text).ids, text
