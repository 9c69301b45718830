"""Runtime metadata derived from the model's own files, each value with its provenance.

bos/eos ids, vocabulary sizes and the chat prompt format come from tokenizer.json,
tokenizer_config.json, generation_config.json and config.json — never from a table in mobq.
Precedence is derived < recipe < CLI flag; the manifest keeps where each value came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mobq.errors import CheckpointError, InputError
from mobq.families import text_config

SENTINELS = ("\x02U1\x03", "\x02A1\x03", "\x02U2\x03", "\x02S1\x03")


class PromptFormat(BaseModel):
    """A chat template reduced to the strings around each turn, for apps without jinja.

    Stored in manifest.json as runtime.chat_format; the apps implement `render` the same way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_user_prefix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    system_prefix: str | None = None
    system_suffix: str | None = None
    # Qwen3-style thinking switch: the generation prompt with thinking turned off.
    assistant_prefix_no_think: str | None = None
    think_open: str | None = None
    think_close: str | None = None

    def render(self, turns: list[tuple[str, str]], *, think: bool = True) -> str:
        """turns: (role, text) with roles user/assistant/system; ends ready for the assistant."""
        out: list[str] = []
        for index, (role, text) in enumerate(turns):
            if role == "system":
                if self.system_prefix is None:
                    raise InputError("this model's chat template has no system role")
                out += [self.system_prefix, text, self.system_suffix or ""]
            elif role == "user":
                prefix = self.first_user_prefix if index == 0 else self.user_prefix
                out += [prefix, text, self.user_suffix]
            elif role == "assistant":
                out += [self.assistant_prefix, text, self.assistant_suffix]
            else:
                raise InputError(f"unknown chat role '{role}'")
        if not think and self.assistant_prefix_no_think is not None:
            out.append(self.assistant_prefix_no_think)
        else:
            out.append(self.assistant_prefix)
        return "".join(out)


@dataclass
class RuntimeMetadata:
    vocab_size: int
    tokenizer_vocab_size: int
    eos_ids: list[int]
    eos_tokens: list[str]
    bos_id: int | None
    bos_token: str | None
    add_bos: bool
    chat_template: str | None
    prompt_format: PromptFormat | None
    max_position_embeddings: int | None
    provenance: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pte_constant_methods(self) -> dict[str, Any]:
        """What the ExecuTorch runner reads; get_eos_ids replaces the tokenizer's eos set."""
        methods: dict[str, Any] = {"get_eos_ids": list(self.eos_ids)}
        if self.bos_id is not None:
            methods["get_bos_id"] = self.bos_id
        return methods


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def load_hf_tokenizer(directory: Path) -> Any:
    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise InputError(
            f"missing tokenizer: {directory} has no tokenizer.json (the ExecuTorch runner needs it); "
            "pass --tokenizer DIR with the model's tokenizer files"
        )
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed files
        raise CheckpointError(f"{path} is not a readable tokenizer: {exc}") from exc


def _adds_bos(
    tokenizer_json: dict[str, Any], tokenizer_config: dict[str, Any], bos: str | None
) -> bool:
    if bos is None:
        return False
    if "add_bos_token" in tokenizer_config:
        return bool(tokenizer_config["add_bos_token"])
    post = tokenizer_json.get("post_processor") or {}
    processors = post.get("processors", [post]) if post else []
    for processor in processors:
        for piece in processor.get("single", []) or []:
            if piece.get("SpecialToken", {}).get("id") == bos:
                return True
    return False


def derive(model_dir: Path, tokenizer_dir: Path, config: Any) -> RuntimeMetadata:
    """Everything the runtime needs, from the checkpoint's own files."""
    tokenizer = load_hf_tokenizer(tokenizer_dir)
    tok_config = _read_json(Path(tokenizer_dir) / "tokenizer_config.json")
    tok_json = _read_json(Path(tokenizer_dir) / "tokenizer.json")
    gen_config = _read_json(Path(model_dir) / "generation_config.json")
    cfg = text_config(config)
    provenance: dict[str, str] = {}

    vocab_size = int(cfg.vocab_size)
    provenance["vocab_size"] = "config.json vocab_size"
    tokenizer_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    highest_id = max(tokenizer.get_vocab(with_added_tokens=True).values())
    if highest_id >= vocab_size:
        raise InputError(
            f"tokenizer/model vocab mismatch: tokenizer in {tokenizer_dir} has ids up to {highest_id} "
            f"but the model's vocab_size is {vocab_size}; use the tokenizer that ships with the model"
        )

    eos_ids: list[int] = []
    for source, ids in (
        ("generation_config.json eos_token_id", _as_list(gen_config.get("eos_token_id"))),
        (
            "tokenizer_config.json eos_token",
            _token_ids(tokenizer, [_token_text(tok_config.get("eos_token"))]),
        ),
        (
            "config.json eos_token_id",
            _as_list(getattr(cfg, "eos_token_id", None) or getattr(config, "eos_token_id", None)),
        ),
    ):
        new = [i for i in ids if i not in eos_ids]
        if new:
            eos_ids += new
            provenance.setdefault("eos_ids", source)
            if provenance["eos_ids"] != source:
                provenance["eos_ids"] += f" + {source}"
    if not eos_ids:
        raise InputError(
            f"cannot derive an end-of-sequence token for {model_dir}: none in generation_config.json, "
            "tokenizer_config.json or config.json"
        )
    bad = [i for i in eos_ids if not 0 <= i < vocab_size]
    if bad:
        raise InputError(f"eos ids {bad} lie outside the model vocabulary (size {vocab_size})")

    bos_token = _token_text(tok_config.get("bos_token"))
    bos_id = tokenizer.token_to_id(bos_token) if bos_token else None
    if bos_token and bos_id is None:
        raise InputError(
            f"bos_token {bos_token!r} from tokenizer_config.json is not in the tokenizer"
        )
    provenance["bos_id"] = (
        "tokenizer_config.json bos_token" if bos_token else "none: tokenizer has no bos"
    )

    chat_template = _chat_template(tokenizer_dir, tok_config)
    prompt_format = None
    if chat_template:
        prompt_format = derive_prompt_format(tokenizer_dir)
        provenance["prompt_format"] = "rendered from the chat template"

    return RuntimeMetadata(
        vocab_size=vocab_size,
        tokenizer_vocab_size=tokenizer_vocab,
        eos_ids=eos_ids,
        eos_tokens=[tokenizer.id_to_token(i) or "" for i in eos_ids],
        bos_id=bos_id,
        bos_token=bos_token,
        add_bos=_adds_bos(tok_json, tok_config, bos_token),
        chat_template=chat_template,
        prompt_format=prompt_format,
        max_position_embeddings=getattr(cfg, "max_position_embeddings", None),
        provenance=provenance,
    )


def _token_ids(tokenizer: Any, tokens: list[str | None]) -> list[int]:
    ids = [tokenizer.token_to_id(t) for t in tokens if t]
    return [i for i in ids if i is not None]


def _chat_template(tokenizer_dir: Path, tok_config: dict[str, Any]) -> str | None:
    jinja = Path(tokenizer_dir) / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None


def load_auto_tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=False)


def render_chat(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def derive_prompt_format(tokenizer_dir: Path) -> PromptFormat | None:
    """Render the template around sentinel messages and cut it into per-turn strings."""
    tokenizer = load_auto_tokenizer(tokenizer_dir)
    u1, a1, u2, s1 = SENTINELS

    def render(messages: list[tuple[str, str]], gen: bool = True, **kw: Any) -> str:
        return render_chat(
            tokenizer,
            [{"role": r, "content": c} for r, c in messages],
            add_generation_prompt=gen,
            **kw,
        )

    try:
        one = render([("user", u1)])
        one_closed = _strip_closing_eos(render([("user", u1)], gen=False), tokenizer)
        answered = _strip_closing_eos(
            render([("user", u1), ("assistant", a1)], gen=False), tokenizer
        )
        two = render([("user", u1), ("assistant", a1), ("user", u2)])
    except Exception:  # a template that cannot render plain turns: apps fall back to raw text
        return None
    first_prefix, rest = one.split(u1, 1)
    user_suffix = one_closed.split(u1, 1)[1]
    if not rest.startswith(user_suffix) or a1 not in answered or a1 not in two:
        return None
    assistant_prefix = rest[len(user_suffix) :]
    assistant_suffix = answered.split(a1, 1)[1]
    between = two.split(a1, 1)[1].split(u2, 1)[0]
    if not between.startswith(assistant_suffix):
        return None
    user_prefix = between[len(assistant_suffix) :]
    fmt = PromptFormat(
        first_user_prefix=first_prefix,
        user_prefix=user_prefix,
        user_suffix=user_suffix,
        assistant_prefix=assistant_prefix,
        assistant_suffix=assistant_suffix,
    )
    fmt = _with_system(fmt, render, s1, u1)
    fmt = _with_thinking(fmt, render, tokenizer, u1)
    rebuilt = fmt.render([("user", u1), ("assistant", a1), ("user", u2)])
    return fmt if rebuilt == two else None


def _strip_closing_eos(text: str, tokenizer: Any) -> str:
    """Templates like Phi-4-mini's end a finished conversation with eos; turns do not."""
    eos = getattr(tokenizer, "eos_token", None)
    return text[: -len(eos)] if eos and text.endswith(eos) else text


def _with_system(fmt: PromptFormat, render: Any, s1: str, u1: str) -> PromptFormat:
    try:
        text = render([("system", s1), ("user", u1)])
    except Exception:
        return fmt
    if s1 not in text:
        return fmt
    system_prefix, rest = text.split(s1, 1)
    between = rest.split(u1, 1)[0]
    if not between.endswith(fmt.user_prefix):
        return fmt
    system_suffix = between[: len(between) - len(fmt.user_prefix)]
    return fmt.model_copy(update={"system_prefix": system_prefix, "system_suffix": system_suffix})


def _with_thinking(fmt: PromptFormat, render: Any, tokenizer: Any, u1: str) -> PromptFormat:
    try:
        off = render([("user", u1)], enable_thinking=False)
    except Exception:
        return fmt
    no_think = off.split(u1, 1)[1]
    user_suffix = fmt.user_suffix
    if not no_think.startswith(user_suffix):
        return fmt
    prefix = no_think[len(user_suffix) :]
    if prefix == fmt.assistant_prefix:
        return fmt
    vocab = tokenizer.get_vocab()
    has_tags = "<think>" in vocab and "</think>" in vocab
    update = {
        "assistant_prefix_no_think": prefix,
        "think_open": "<think>" if has_tags else None,
        "think_close": "</think>" if has_tags else None,
    }
    return fmt.model_copy(update=update)


# Strings the runner's tokenizer must split exactly as transformers does: unicode, whitespace
# runs, code, emoji and special tokens, as in real chat prompts.
RUNNER_PROBES = (
    "Hello world",
    "  leading   spaces\n\n\ttabs and trailing  ",
    "héllo wörld — naïve café, Ünïcödé; 日本語のテスト, 中文, русский, العربية",
    "def f(x):\n    return x**2  # two  spaces\n\tindented\r\nwindows line",
    "emoji 😀👍🏽 🇫🇷 👨‍👩‍👧",
    "numbers 1234567 3.14159 1e-9 0x1F",
    "   ",
    "a\u00a0b\u2009c",
)


@dataclass(frozen=True)
class TokenMismatch:
    text: str
    runner_ids: list[int]
    hf_ids: list[int]


def _runner_tokenizer(path: Path) -> Any:
    """pytorch_tokenizers' HFTokenizer: what ExecuTorch's TextLLMRunner and the apps load."""
    from mobq.runtime import quiet_native_logs

    with quiet_native_logs():  # the C++ library logs regex fallbacks on load
        from pytorch_tokenizers import CppHFTokenizer

        tokenizer = CppHFTokenizer()
        tokenizer.load(str(path))
    return tokenizer


def _normalizer_outputs(normalizer: dict[str, Any] | None) -> set[str]:
    """Strings a normalizer writes into the text: Replace contents and Prepend prefixes."""
    if not normalizer:
        return set()
    kind = normalizer.get("type")
    if kind == "Sequence":
        return set().union(*(_normalizer_outputs(n) for n in normalizer.get("normalizers") or []))
    written = normalizer.get("content") if kind == "Replace" else normalizer.get("prepend")
    return {written} if kind in ("Replace", "Prepend") and written else set()


def _merge_hidden_added_tokens(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Added tokens the runner's BPE can never produce, although transformers' does.

    pytorch_tokenizers takes every added token out of the BPE vocabulary (and so out of every
    merge that yields it) and only matches it in the raw input. A non-special, unnormalized added
    token made of normalizer output (Gemma-3's '▁▁'...: Replace ' ' -> '▁') never occurs in raw
    text, so for the runner a run of spaces stays '▁','▁',... while transformers merges it.
    """
    outputs = _normalizer_outputs(data.get("normalizer"))
    vocab = (data.get("model") or {}).get("vocab")
    if not outputs or not isinstance(vocab, dict):
        return []
    return [
        token
        for token in data.get("added_tokens") or []
        if not token.get("special")
        and not token.get("normalized")
        and vocab.get(token.get("content")) == token.get("id")
        and any(out in token["content"] for out in outputs)
    ]


def runner_tokenizer_json(tokenizer_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """tokenizer.json as the runner should get it, and what was changed (why, one line each).

    pytorch_tokenizers' NFC normalizer strips accents ("é" -> "e"); transformers' NFC leaves
    composed text as it is. Without the normalizer the runner splits NFC text exactly as
    transformers does, so apps must hand it NFC text (Swift and Kotlin normalize natively).

    Added tokens that only the normalizer's output can spell (Gemma-3's whitespace runs) go back
    to being plain BPE tokens, so the runner's merges reach them as transformers' do. Only text
    holding a literal run of the output next to a space ('▁▁ ', U+2581 twice) still splits
    differently: transformers matches such a run as an added token before normalizing.
    """
    data = _read_json(Path(tokenizer_dir) / "tokenizer.json")
    changes: list[str] = []
    normalizer = data.get("normalizer") or {}
    if normalizer.get("type") == "NFC":
        data["normalizer"] = None
        changes.append(
            "dropped the NFC normalizer (pytorch_tokenizers' strips accents); feed NFC text"
        )
    hidden = _merge_hidden_added_tokens(data)
    if hidden:
        ids = {token["id"] for token in hidden}
        data["added_tokens"] = [t for t in data["added_tokens"] if t.get("id") not in ids]
        changes.append(
            f"made {len(hidden)} added tokens spelled by the normalizer (e.g. "
            f"{hidden[0]['content']!r}) plain BPE tokens: pytorch_tokenizers never merges "
            "into added tokens, so it left whitespace runs unmerged"
        )
    return data, changes


def runner_tokenizer_mismatches(
    tokenizer_json: Path, texts: tuple[str, ...] = RUNNER_PROBES, *, reference: Path | None = None
) -> list[TokenMismatch]:
    """Texts on which the runner's tokenizer disagrees with transformers' (special tokens on)."""
    from tokenizers import Tokenizer

    runner = _runner_tokenizer(Path(tokenizer_json))
    hf = Tokenizer.from_file(str(reference or tokenizer_json))
    out = []
    for text in texts:
        runner_ids = [int(i) for i in runner.encode(text, 0, 0)]
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        if runner_ids != hf_ids:
            out.append(TokenMismatch(text, runner_ids, hf_ids))
    return out


def write_runner_tokenizer(
    tokenizer_dir: Path, out_path: Path, texts: tuple[str, ...] = RUNNER_PROBES
) -> list[str]:
    """Write the runner's tokenizer.json; refuse one it would split unlike transformers."""
    from mobq import fsutil

    data, changes = runner_tokenizer_json(tokenizer_dir)
    with fsutil.atomic_path(Path(out_path)) as tmp:
        Path(tmp).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        bad = runner_tokenizer_mismatches(
            Path(tmp), texts, reference=Path(tokenizer_dir) / "tokenizer.json"
        )
        if bad:
            first = bad[0]
            raise InputError(
                f"ExecuTorch's tokenizer (pytorch_tokenizers) splits {len(bad)} of {len(texts)} "
                f"probe strings of {tokenizer_dir}/tokenizer.json unlike transformers, e.g. "
                f"{first.text!r}: runner {first.runner_ids[:12]} vs {first.hf_ids[:12]}; the app "
                "would feed the model different tokens than it was trained on"
            )
    return changes
