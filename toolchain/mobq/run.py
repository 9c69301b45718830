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
from mobq.runtime import capture_runner_output, text_runner


@dataclass
class Generation:
    text: str
    tokens: int
    stats: dict[str, Any]


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
) -> Generation:
    manifest = manifest or load_manifest(export_dir)
    if max_new_tokens <= 0:
        raise InputError(f"--max-new-tokens must be positive, got {max_new_tokens}")
    if temperature < 0:
        raise InputError(f"--temperature must be >= 0, got {temperature}")
    text = build_prompt(manifest, prompt, raw=raw, think=think)
    runner = text_runner(
        manifest.checked_path(export_dir, "program"), manifest.checked_path(export_dir, "tokenizer")
    )
    from executorch.extension.llm.runner import GenerationConfig

    stats: dict[str, Any] = {}

    def collect(result: Any) -> None:
        stats.update(json.loads(result.to_json_string()))

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        echo=False,
        num_bos=1 if raw and manifest.runtime.add_bos else 0,
    )
    sink = None if on_token is None else _StreamSink(on_token, manifest.runtime.eos_tokens)
    with capture_runner_output(sink.feed if sink else None) as output:
        runner.generate(text, config, stats_callback=collect)
    if sink is not None:
        sink.close()
    text_out = strip_stop_tokens(output.text(), manifest.runtime.eos_tokens)
    return Generation(text_out, int(stats.get("generated_tokens", 0)), stats)


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
