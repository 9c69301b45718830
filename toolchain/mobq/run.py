"""`mobq run`: generate from an export with ExecuTorch's stock TextLLMRunner, as the apps do."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq.errors import InputError
from mobq.manifest import Manifest, load_manifest
from mobq.runtime import quiet_native_logs, text_runner


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
    from mobq.metadata import PromptFormat

    turns: list[tuple[str, str]] = []
    if system:
        turns.append(("system", system))
    turns += [*list(history or []), ("user", message)]
    return PromptFormat(**fmt.model_dump()).render(turns, think=think)


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
        Path(export_dir) / manifest.file("program").path,
        Path(export_dir) / manifest.file("tokenizer").path,
    )
    from executorch.extension.llm.runner import GenerationConfig

    pieces: list[str] = []
    stats: dict[str, Any] = {}

    def token(piece: str) -> None:
        pieces.append(piece)
        if on_token is not None:
            on_token(piece)

    def collect(result: Any) -> None:
        stats.update(json.loads(result.to_json_string()))

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        echo=False,
        num_bos=1 if raw and manifest.runtime.add_bos else 0,
    )
    with quiet_native_logs():
        runner.generate(text, config, token_callback=token, stats_callback=collect)
    return Generation("".join(pieces), len(pieces), stats)
