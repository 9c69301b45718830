"""`mobq run`: generate from an export with ExecuTorch's stock TextLLMRunner, as the apps do."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq.errors import InputError
from mobq.manifest import Manifest, load_manifest
from mobq.runtime import capture_runner_output, multimodal_runner, runner_api, text_runner


@dataclass
class Generation:
    text: str
    tokens: int
    stats: dict[str, Any]


def uses_stock_runner(export_dir: Path, asked: bool, image: Path | None) -> bool:
    """`mobq run` generates with the stock runner when asked, for a picture, or for any
    multimodal export (`Conversation` drives text programs only); else with `Conversation`."""
    return asked or image is not None or load_manifest(export_dir).image is not None


def build_prompt(
    manifest: Manifest,
    message: str,
    *,
    raw: bool,
    think: bool = True,
    history: list[tuple[str, str]] | None = None,
    system: str | None = None,
) -> str:
    """The exact text the runner tokenizes: the manifest's chat format around the turns."""
    if raw:
        return message
    fmt = manifest.runtime.chat_format
    if fmt is None:
        raise InputError("this export has no chat template; pass --raw to send the text as is")
    turns: list[tuple[str, str]] = []
    if system:
        turns.append(("system", system))
    turns += [*list(history or []), ("user", message)]
    return fmt.render(turns, think=think)


def generate(
    export_dir: Path,
    prompt: str,
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    raw: bool = False,
    think: bool = True,
    on_token: Callable[[str], None] | None = None,
    manifest: Manifest | None = None,
    image: Path | None = None,
) -> Generation:
    """Generate through ExecuTorch's stock runner: TextLLMRunner, or with `image` the
    MultimodalRunner (the picture goes where the chat template puts the user's message)."""
    manifest = manifest or load_manifest(export_dir)
    if max_new_tokens <= 0:
        raise InputError(f"--max-new-tokens must be positive, got {max_new_tokens}")
    if temperature < 0:
        raise InputError(f"--temperature must be >= 0, got {temperature}")
    program = manifest.checked_path(export_dir, "program")
    tokenizer = manifest.checked_path(export_dir, "tokenizer")
    if image is not None:
        inputs: Any = image_prompt(manifest, tokenizer, prompt, image, raw=raw, think=think)
        runner = multimodal_runner(program, tokenizer)
    else:
        if manifest.image is not None:
            raise InputError(
                "this export is multimodal: pass --image PHOTO (or export --text-only)"
            )
        inputs = build_prompt(manifest, prompt, raw=raw, think=think)
        runner = text_runner(program, tokenizer)
    runners = runner_api()
    stats: dict[str, Any] = {}

    def collect(result: Any) -> None:
        stats.update(json.loads(result.to_json_string()))

    config = runners.GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        echo=False,
        num_bos=1 if raw and manifest.runtime.add_bos else 0,
    )
    sink = None if on_token is None else _StreamSink(on_token, manifest.runtime.eos_tokens)
    with capture_runner_output(sink.feed if sink else None) as output:
        runner.generate(inputs, config, stats_callback=collect)
    if sink is not None:
        sink.close()
    text_out = strip_stop_tokens(output.text(), manifest.runtime.eos_tokens)
    # The runner's generated_tokens counts decode steps; the first token came out of prefill.
    tokens = int(stats["generated_tokens"]) + 1 if "generated_tokens" in stats else 0
    return Generation(text_out, tokens, stats)


IMAGE_SLOT = "\x00mobq-image\x00"


def image_prompt(
    manifest: Manifest, tokenizer: Path, message: str, image: Path, *, raw: bool, think: bool
) -> list[Any]:
    """[text, image, text] for the MultimodalRunner, laid out as the model's processor does:
    the picture comes first in the user's turn, between <start_of_image> and <end_of_image>
    (each set off by a blank line, as Gemma-3's processor writes them)."""
    from mobq.vision import ImageSpec, load_image, preprocess, spelled_token

    runners = runner_api()
    if manifest.image is None:
        raise InputError("this export has no vision encoder; export a multimodal checkpoint")
    spec = ImageSpec(**manifest.image)
    before, _, after = build_prompt(manifest, IMAGE_SLOT + message, raw=raw, think=think).partition(
        IMAGE_SLOT
    )
    boi, eoi = (
        spelled_token(tokenizer, spec.boi_token_id),
        spelled_token(tokenizer, spec.eoi_token_id),
    )
    before += f"\n\n{boi}" if boi else ""
    after = (f"{eoi}\n\n" if eoi else "") + after
    pixels = preprocess(load_image(Path(image)), spec)
    return [
        runners.make_text_input(before),
        runners.make_image_input(pixels[0]),
        runners.make_text_input(after),
    ]


class _StreamSink:
    """Decodes streamed bytes and holds back a tail that may be the final eos piece."""

    def __init__(self, on_token: Callable[[str], None], stop: list[str]) -> None:
        self.on_token = on_token
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=0)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes) -> None:
        self.pending += self.decoder.decode(data)
        if len(self.pending) > self.hold:
            cut = len(self.pending) - self.hold
            self.on_token(self.pending[:cut])
            self.pending = self.pending[cut:]

    def close(self) -> None:
        self.pending += self.decoder.decode(b"", final=True)
        rest = strip_stop_tokens(self.pending, self.stop)
        if rest:
            self.on_token(rest)


def strip_stop_tokens(text: str, stop: list[str]) -> str:
    """The runner prints the eos piece it stopped on; it is not part of the answer."""
    for token in stop:
        if token and text.endswith(token):
            return text[: -len(token)]
    return text


# ------------------------------------------------------------------ mobq's own sampling loop
#
# The stock runner fixes top-p at 0.9 and seeds its sampler from the clock, and it does not
# say how many tokens a conversation occupies. `mobq run` (by default) and `mobq chat` drive the
# same .pte's forward method themselves, so --top-p and --seed are honoured and the context
# window is accounted to the token.


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise InputError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"--top-p must be in (0, 1], got {self.top_p}")

    def generator(self) -> Any:
        import torch

        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator


def sample(logits: Any, sampling: Sampling, generator: Any) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling over the tempered distribution."""
    import torch

    logits = logits.float().reshape(-1)
    if sampling.temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        outside = sorted_probs.cumsum(0) - sorted_probs >= sampling.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class Detokenizer:
    """Streams text for a growing token list; holds back a piece that ends mid-character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if text.endswith("\ufffd"):  # byte-level BPE: the rest of the character is coming
            return ""
        new, self.sent = text[self.sent :], len(text)
        return new

    def flush(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        new, self.sent = text[self.sent :], len(text)
        return new


class ThinkSplitter:
    """Splits streamed text into the thinking part and the answer (Qwen3's <think> block)."""

    def __init__(
        self, open_tag: str | None, close_tag: str | None, emit: Callable[[str, str], None]
    ) -> None:
        self.open_tag, self.close_tag = open_tag, close_tag
        self.emit = emit
        self.state = "start" if open_tag and close_tag else "answer"
        self.buffer = ""
        self.parts = {"think": "", "answer": ""}

    def feed(self, text: str) -> None:
        self.buffer += text
        while self.buffer:
            if self.state == "start":
                stripped = self.buffer.lstrip()
                if self.open_tag.startswith(stripped):  # type: ignore[union-attr]
                    return  # could still become the opening tag
                if stripped.startswith(self.open_tag):  # type: ignore[arg-type]
                    self.buffer = stripped[len(self.open_tag) :]  # type: ignore[arg-type]
                    self.state = "think"
                else:
                    self.state = "answer"
            elif self.state == "think":
                cut = self.buffer.find(self.close_tag)  # type: ignore[arg-type]
                if cut < 0:
                    keep = _partial_suffix(self.buffer, self.close_tag)  # type: ignore[arg-type]
                    self._out("think", self.buffer[: len(self.buffer) - keep])
                    self.buffer = self.buffer[len(self.buffer) - keep :]
                    return
                self._out("think", self.buffer[:cut])
                self.buffer = self.buffer[cut + len(self.close_tag) :].lstrip("\n")  # type: ignore[arg-type]
                self.state = "after"
            elif self.state == "after":
                self.buffer = self.buffer.lstrip("\n")
                if self.buffer:
                    self.state = "answer"
            else:
                self._out("answer", self.buffer)
                self.buffer = ""

    def close(self) -> None:
        if self.buffer:
            self._out("think" if self.state == "think" else "answer", self.buffer)
            self.buffer = ""

    def _out(self, kind: str, text: str) -> None:
        if text:
            self.parts[kind] += text
            self.emit(kind, text)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


@dataclass
class Reply:
    answer: str
    thinking: str
    tokens: int
    prompt_tokens: int
    stop: str  # "eos" | "max_new_tokens" | "context_full"
    prefill_s: float
    decode_s: float
    context_used: int
    context_size: int

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["decode_tokens_per_sec"] = (
            round(self.tokens / self.decode_s, 2) if self.decode_s else 0
        )
        data["prefill_tokens_per_sec"] = (
            round(self.prompt_tokens / self.prefill_s, 2) if self.prefill_s else 0
        )
        return data


class ContextFull(InputError):
    """The conversation no longer fits the export's context window."""


class Conversation:
    """A multi-turn chat over one .pte whose KV cache is reused between turns.

    Every turn renders the whole conversation with the manifest's chat format, keeps the
    cached positions that still match the new token sequence and prefills only the rest.
    """

    def __init__(
        self,
        export_dir: Path,
        *,
        sampling: Sampling | None = None,
        think: bool = True,
        system: str | None = None,
        raw: bool = False,
        manifest: Manifest | None = None,
        session: Any = None,
    ) -> None:
        from mobq.metadata import load_hf_tokenizer
        from mobq.runtime import ForwardSession

        self.manifest = manifest or load_manifest(export_dir)
        if self.manifest.image is not None:
            raise InputError(
                "this export is multimodal: use `mobq run --image PHOTO` (chat is text-only; "
                "export --text-only for it)"
            )
        self.sampling = sampling or Sampling()
        self.generator = self.sampling.generator()
        self.think, self.system, self.raw = think, system, raw
        if not raw and self.manifest.runtime.chat_format is None:
            raise InputError("this export has no chat template; pass --raw to send the text as is")
        tokenizer_path = self.manifest.checked_path(export_dir, "tokenizer")
        self.tokenizer = load_hf_tokenizer(tokenizer_path.parent)
        rt = self.manifest.runtime
        self.session = session or ForwardSession(
            self.manifest.checked_path(export_dir, "program"),
            ctx=rt.max_context_len,
            max_seq_len=rt.max_seq_len,
        )
        self.eos = set(rt.eos_ids)
        self.history: list[tuple[str, str]] = []
        self.cached: list[int] = []  # the tokens whose keys/values the cache holds

    @property
    def ctx(self) -> int:
        return self.session.ctx

    def used(self) -> int:
        return len(self.cached)

    def reset(self) -> None:
        self.history.clear()
        self.cached.clear()
        self.session.rewind(0)

    def prompt_ids(self, message: str) -> list[int]:
        """Token ids of the whole conversation with `message` as the next user turn."""
        if self.raw:
            text = "".join(t for _, t in self.history) + message
        else:
            text = build_prompt(
                self.manifest,
                message,
                raw=False,
                think=self.think,
                history=self.history,
                system=self.system,
            )
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if self.raw and self.manifest.runtime.add_bos and self.manifest.runtime.bos_id is not None:
            ids = [self.manifest.runtime.bos_id, *ids]
        return ids

    def send(
        self,
        message: str,
        *,
        max_new_tokens: int = 256,
        on_text: Callable[[str, str], None] | None = None,
    ) -> Reply:
        """One turn: prefill what the cache lacks, then sample until eos, the limit or ctx."""
        import time

        if max_new_tokens <= 0:
            raise InputError(f"--max-new-tokens must be positive, got {max_new_tokens}")
        ids = self.prompt_ids(message)
        if len(ids) >= self.ctx:
            raise ContextFull(
                f"the conversation needs {len(ids)} tokens but the context window holds {self.ctx}: "
                "start a new conversation (/reset) or re-export with a larger --ctx"
            )
        keep = _common_prefix(self.cached, ids[:-1])  # the last prompt token must run: logits
        self.session.rewind(keep)
        self.cached = ids[:keep]
        started = time.perf_counter()
        logits = self.session.feed(ids[keep:])
        self.cached = list(ids)
        prefill_s = time.perf_counter() - started

        detok = Detokenizer(self.tokenizer)
        splitter = ThinkSplitter(
            None if self.raw or not self.think else self._fmt().think_open,
            None if self.raw or not self.think else self._fmt().think_close,
            on_text or (lambda kind, text: None),
        )
        generated: list[int] = []
        stop = "max_new_tokens"
        started = time.perf_counter()
        while len(generated) < max_new_tokens:
            token = sample(logits, self.sampling, self.generator)
            if token in self.eos:
                stop = "eos"
                break
            generated.append(token)
            splitter.feed(detok.push(token))
            if self.session.room() == 0:
                stop = "context_full"
                break
            logits = self.session.feed([token])
            self.cached.append(token)
        decode_s = time.perf_counter() - started
        splitter.feed(detok.flush())
        splitter.close()
        answer = splitter.parts["answer"]
        # Like Qwen3's own template, later turns see the answer without its thinking part.
        self.history += [("user", message), ("assistant", answer)]
        return Reply(
            answer=answer,
            thinking=splitter.parts["think"],
            tokens=len(generated),
            prompt_tokens=len(ids) - keep,
            stop=stop,
            prefill_s=prefill_s,
            decode_s=decode_s,
            context_used=self.used(),
            context_size=self.ctx,
        )

    def _fmt(self) -> Any:
        return self.manifest.runtime.chat_format


def _common_prefix(a: list[int], b: list[int]) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size
