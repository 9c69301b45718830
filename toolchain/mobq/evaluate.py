"""`mobq eval`: how much quality the export kept, measured like the model cards' tables.

Perplexity on a text (the bundled corpus by default) for up to three models scored on the same
token windows: the reference checkpoint the export came from, the eager quantized checkpoint
(transformers + torchao) and the .pte (ExecuTorch runtime, KV cache, one token per step). Their
top-1 next-token agreement says how often the cheaper model predicts what the better one does.
`--lm-eval TASKS` hands the quantized checkpoint to lm-evaluation-harness when it is installed.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobq import hostinfo, progress
from mobq.errors import InputError
from mobq.manifest import Manifest, load_manifest

DEFAULT_TEXT = Path(__file__).resolve().parent / "data" / "corpus.txt"
LM_EVAL_INSTALL = "pip install 'mobq[eval]' (or: pip install 'lm-eval>=0.4')"


@dataclass
class Score:
    model: str  # reference | eager_quantized | pte
    description: str
    perplexity: float | None = None
    mean_nll: float | None = None
    predictions: int = 0
    skipped: str | None = None
    top1: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("top1")
        return data


@dataclass
class EvalResult:
    model: str
    scheme: str
    ctx: int
    text: str
    tokens: int
    window: int
    scores: list[Score]
    agreement: dict[str, float]
    lm_eval: dict[str, Any] | None
    device: str
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = [s.to_dict() for s in self.scores]
        return data

    def score(self, model: str) -> Score:
        return next(s for s in self.scores if s.model == model)


def token_windows(ids: list[int], window: int) -> list[list[int]]:
    """Consecutive windows of at most `window` tokens; each is scored from position 0."""
    if window < 2:
        raise InputError(f"a perplexity window needs at least 2 tokens, got {window}")
    windows = [ids[i : i + window] for i in range(0, len(ids), window)]
    return [w for w in windows if len(w) >= 2]


def nll_and_top1(logits: torch.Tensor, window: list[int]) -> tuple[float, list[int]]:
    """Summed negative log-likelihood of window[1:] and the argmax at each predicting position."""
    logits = logits[: len(window) - 1].float()
    targets = torch.tensor(window[1:])
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    return float(nll), logits.argmax(-1).tolist()


def _score(model: str, description: str, windows: list[list[int]], logits_of: Any) -> Score:
    total, count, top1 = 0.0, 0, []
    with progress.task(f"perplexity: {description}", total=len(windows)) as advance:
        for window in windows:
            nll, predicted = nll_and_top1(logits_of(window), window)
            total += nll
            count += len(window) - 1
            top1 += predicted
            advance(1)
    mean = total / count
    return Score(model, description, round(math.exp(mean), 4), round(mean, 5), count, top1=top1)


def _hf_scorer(model_dir: Path) -> Any:
    from transformers.utils import logging as hf_logging

    from mobq.verify import load_reference

    hf_logging.disable_progress_bar()  # mobq shows its own progress; tqdm would interleave
    model = load_reference(model_dir)

    @torch.no_grad()
    def logits_of(window: list[int]) -> torch.Tensor:
        return model(torch.tensor([window])).logits[0]

    return logits_of


def _pte_scorer(export_dir: Path, manifest: Manifest) -> Any:
    from mobq.runtime import ForwardSession

    session = ForwardSession(
        manifest.checked_path(export_dir, "program"),
        ctx=manifest.runtime.max_context_len,
        max_seq_len=manifest.runtime.max_seq_len,
    )

    def logits_of(window: list[int]) -> torch.Tensor:
        # The program returns the last position's logits only: step through the KV cache.
        session.rewind(0)
        return torch.stack([session.feed([token]).clone() for token in window[:-1]])

    return logits_of


def reference_dir(manifest: Manifest) -> tuple[Path | None, str]:
    path = manifest.model.source.get("path")
    if path and (Path(path) / "config.json").is_file():
        return Path(path), f"reference: {manifest.model.name} ({path})"
    return None, f"the source checkpoint is not on this machine ({path or 'no path recorded'})"


def quantized_dir(manifest: Manifest) -> tuple[Path | None, str]:
    if not manifest.quantization:
        return None, f"the {manifest.export.scheme} export has no quantized checkpoint"
    path = manifest.quantization.get("path")
    if path and (Path(path) / "config.json").is_file():
        return Path(path), f"eager {manifest.export.scheme} (transformers + torchao)"
    return None, f"the quantized checkpoint is no longer in the mobq cache ({path}); re-export"


def agreement(scores: list[Score]) -> dict[str, float]:
    """Top-1 agreement for each pair of scored models, as a fraction of predictions."""
    scored = [s for s in scores if s.top1]
    out: dict[str, float] = {}
    for i, a in enumerate(scored):
        for b in scored[i + 1 :]:
            same = sum(x == y for x, y in zip(a.top1, b.top1, strict=True))
            out[f"{b.model}_vs_{a.model}"] = round(same / len(a.top1), 4)
    return out


def run(
    export_dir: Path,
    *,
    text_path: Path | None = None,
    max_tokens: int = 512,
    lm_eval_tasks: list[str] | None = None,
    lm_eval_limit: int | None = None,
) -> EvalResult:
    from mobq.metadata import load_hf_tokenizer

    manifest = load_manifest(export_dir)
    if manifest.image is not None:
        raise InputError(
            f"{export_dir} is a multimodal export; `mobq eval` scores the text decoder: "
            "re-export with --text-only"
        )
    if lm_eval_tasks:
        require_lm_eval()
    text_path = Path(text_path or DEFAULT_TEXT)
    if not text_path.is_file():
        raise InputError(f"no such text file: {text_path}")
    if max_tokens < 2:
        raise InputError(f"--max-tokens must be >= 2, got {max_tokens}")
    tokenizer = load_hf_tokenizer(manifest.checked_path(export_dir, "tokenizer").parent)
    text = text_path.read_text(encoding="utf-8", errors="replace")
    ids = tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens]
    window = min(manifest.runtime.max_context_len, max_tokens)
    windows = token_windows(ids, window)
    if not windows:
        raise InputError(f"{text_path} has fewer than 2 tokens: nothing to score")

    scores = []
    for name, (path, description) in (
        ("reference", reference_dir(manifest)),
        ("eager_quantized", quantized_dir(manifest)),
    ):
        if path is None:
            scores.append(Score(name, name.replace("_", " "), skipped=description))
        else:
            scores.append(_score(name, description, windows, _hf_scorer(path)))
    scores.append(
        _score(
            "pte", "model.pte (ExecuTorch, KV cache)", windows, _pte_scorer(export_dir, manifest)
        )
    )
    lm_eval = None
    if lm_eval_tasks:
        path, reason = quantized_dir(manifest)
        if path is None:
            path, reason = reference_dir(manifest)
        if path is None:
            raise InputError(f"--lm-eval needs a checkpoint to evaluate: {reason}")
        lm_eval = run_lm_eval(path, lm_eval_tasks, lm_eval_limit)
    return EvalResult(
        model=manifest.model.name,
        scheme=manifest.export.scheme,
        ctx=manifest.export.ctx,
        text=str(text_path),
        tokens=len(ids),
        window=window,
        scores=scores,
        agreement=agreement(scores),
        lm_eval=lm_eval,
        device=hostinfo.host()["cpu"],
        versions=hostinfo.versions(),
    )


def lm_eval_available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def require_lm_eval() -> None:
    if not lm_eval_available():
        raise InputError(
            f"--lm-eval needs lm-evaluation-harness, which is not installed: {LM_EVAL_INSTALL}"
        )


def run_lm_eval(model_dir: Path, tasks: list[str], limit: int | None) -> dict[str, Any]:
    """lm-evaluation-harness on a transformers checkpoint (torchao-quantized loads as is)."""
    require_lm_eval()
    import lm_eval

    with progress.task(f"lm-evaluation-harness: {', '.join(tasks)}"):
        output = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            tasks=tasks,
            device="cpu",
            limit=limit,
        )
    return {"model_dir": str(model_dir), "limit": limit, "results": output.get("results", {})}
