"""mobq's Python API: export, load, generate and benchmark from Python.

The same stage functions as the `mobq` command line, not a second path: `export` builds the
pipeline's `ExportRequest`, `load` opens an export the way `mobq run` and `mobq chat` do, and
`bench` returns `mobq bench --json`'s shared result schema. A Hub repo id (`org/name`) works
wherever a local export directory does: it is downloaded through the Hugging Face cache and
checked against its manifest's sha256 before use.

    import mobq
    export = mobq.export("qwen3-0.6b", ctx=512, random_weights=True)
    model = mobq.load(export.path)
    print(model.generate("Why is the sky blue?", max_new_tokens=64))
    results = mobq.bench(export.path, prompt_tokens=[128], new_tokens=64)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the heavy modules load on first use, so `import mobq` stays fast
    from mobq.manifest import Manifest
    from mobq.results import BenchResult
    from mobq.run import Conversation, Reply
    from mobq.upload import PublishResult

__all__ = ["Export", "Model", "bench", "export", "load", "locate", "publish"]


@dataclass(frozen=True)
class Export:
    """A verified export on disk: its directory and its manifest."""

    path: Path
    manifest: Manifest

    def __repr__(self) -> str:
        m = self.manifest
        return f"Export({str(self.path)!r}, model={m.model.name!r}, scheme={m.export.scheme!r}, ctx={m.export.ctx})"

    @property
    def program(self) -> Path:
        """The .pte file."""
        return self.manifest.checked_path(self.path, "program")

    @property
    def tokenizer(self) -> Path:
        """The tokenizer.json the runner reads."""
        return self.manifest.checked_path(self.path, "tokenizer")


def export(
    model: str | Path,
    *,
    out: str | Path | None = None,
    scheme: str | None = None,
    ctx: int | None = None,
    max_seq_len: int | None = None,
    group_size: int | None = None,
    hqq: bool | None = None,
    overrides: Sequence[str] = (),
    random_weights: bool = False,
    text_only: bool = False,
    seed: int = 0,
    tokenizer: str | Path | None = None,
    revision: str | None = None,
    force: bool = False,
    use_cache: bool = True,
    min_sqnr_db: float | None = None,
) -> Export:
    """Export `model` (a recipe name, a Hub id or a local Hugging Face directory) to a
    verified .pte, exactly as `mobq export` does; `None` means the recipe's or mobq's default.

    Raises a `mobq.errors.MobqError` subclass on bad input or a failed verification; an
    existing `out` is replaced only with `force=True`.
    """
    from mobq.pipeline import ExportRequest, export_model

    request = ExportRequest(
        model=str(model),
        out=Path(out) if out is not None else None,
        scheme=scheme,
        ctx=ctx,
        max_seq_len=max_seq_len,
        group_size=group_size,
        hqq=hqq,
        overrides=list(overrides),
        random_weights=random_weights,
        text_only=text_only,
        seed=seed,
        tokenizer=Path(tokenizer) if tokenizer is not None else None,
        revision=revision,
        force=force,
        use_cache=use_cache,
        min_sqnr_db=min_sqnr_db,
    )
    path, manifest = export_model(request)
    return Export(Path(path), manifest)


def locate(path_or_repo: str | Path, *, revision: str | None = None) -> Path:
    """A local export directory as is; a Hub repo id (`org/name`) downloaded through the HF
    cache (`revision` pins a branch, tag or commit; HF_HUB_OFFLINE uses the cache alone) and
    checked file by file against its manifest's sha256."""
    from mobq import hub

    if isinstance(path_or_repo, str) and hub.is_repo_id(path_or_repo):
        return hub.fetch_export(path_or_repo, revision=revision)
    if revision is not None:
        from mobq.errors import InputError

        raise InputError(
            f"--revision applies to a Hub repo id, not to the directory {path_or_repo}"
        )
    return Path(path_or_repo)


class Model:
    """An export opened for generation in this process (ExecuTorch's runtime, as `mobq run`)."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self._conversation: Conversation | None = None

    @property
    def ctx(self) -> int:
        """The context window, in tokens, the program was exported with."""
        return self.manifest.runtime.max_context_len

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        system: str | None = None,
        raw: bool = False,
        think: bool = True,
        on_text: Callable[[str, str], None] | None = None,
    ) -> str:
        """One reply to `prompt` (a fresh conversation each call), in the model's chat format
        unless `raw`; greedy at temperature 0. `on_text(kind, text)` streams it, kind being
        "think" or "answer". Returns the answer (Qwen3's thinking is left out)."""
        return self.reply(
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            system=system,
            raw=raw,
            think=think,
            on_text=on_text,
        ).answer

    def reply(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        system: str | None = None,
        raw: bool = False,
        think: bool = True,
        on_text: Callable[[str, str], None] | None = None,
    ) -> Reply:
        """Like `generate`, returning the whole `Reply`: answer, thinking, token counts,
        why it stopped, prefill and decode timings."""
        conversation = self.chat(
            temperature=temperature, top_p=top_p, seed=seed, system=system, raw=raw, think=think
        )
        return conversation.send(prompt, max_new_tokens=max_new_tokens, on_text=on_text)

    def chat(
        self,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        system: str | None = None,
        raw: bool = False,
        think: bool = True,
    ) -> Conversation:
        """A multi-turn `Conversation` (`.send(message)`, `.reset()`) as `mobq chat` holds one;
        the loaded program is shared between calls."""
        from mobq.run import Conversation, Sampling

        session = self._conversation.session if self._conversation is not None else None
        conversation = Conversation(
            self.path,
            sampling=Sampling(temperature, top_p, seed),
            think=think,
            system=system,
            raw=raw,
            manifest=self.manifest,
            session=session,
        )
        conversation.reset()
        self._conversation = conversation
        return conversation

    def __repr__(self) -> str:
        m = self.manifest
        return f"Model({m.model.name!r}, scheme={m.export.scheme!r}, ctx={self.ctx}, path={str(self.path)!r})"


def load(path_or_repo: str | Path, *, revision: str | None = None) -> Model:
    """Open an export directory, or a published export on the Hub (`org/name`), for
    generation. The program loads on the first `generate`."""
    from mobq.manifest import load_manifest

    path = locate(path_or_repo, revision=revision)
    return Model(path, load_manifest(path))


def bench(
    path_or_repo: str | Path,
    *,
    prompt_tokens: Sequence[int] = (128,),
    new_tokens: int | Sequence[int] = 64,
    threads: Sequence[int] | None = None,
    warmup: int = 1,
    reps: int = 3,
    fresh_process: bool = True,
    revision: str | None = None,
) -> list[BenchResult]:
    """Load time, TTFT, prefill and decode tok/s and peak RSS through ExecuTorch's stock
    runner, one result per (threads, prompt length, new tokens), as `mobq bench --json`.

    `threads` defaults to every core; `fresh_process=False` measures in this process (faster,
    but its peak RSS includes this interpreter)."""
    from mobq import benchmark as bench_stage
    from mobq import hostinfo
    from mobq.manifest import load_manifest

    path = locate(path_or_repo, revision=revision)
    manifest = load_manifest(path)
    gen = [new_tokens] if isinstance(new_tokens, int) else list(new_tokens)
    configs = bench_stage.plan(
        manifest,
        list(prompt_tokens),
        gen,
        list(threads) if threads else [hostinfo.host()["cores"]],
        warmup=warmup,
        reps=reps,
    )
    return bench_stage.run(path, configs, fresh_process=fresh_process)


def publish(
    path: str | Path, repo_id: str, *, private: bool = False, message: str | None = None
) -> PublishResult:
    """Upload a verified export (or an int4-hqq server checkpoint) to the Hub as `repo_id`, in
    one commit with a model card, as `mobq publish`. The token is huggingface_hub's own
    (`hf auth login` or HF_TOKEN); an export is checked against its manifest first."""
    from mobq import upload

    return upload.run(Path(path), repo_id, private=private, message=message)
