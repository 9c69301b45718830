"""Small offline models: a BPE tokenizer trained on the bundled corpus and tiny decoders.

Used by `mobq demo` (a tiny Qwen3-architecture model, briefly trained so its output reads
like text), by `--random-weights` when no real tokenizer is at hand, and by the tests.
Nothing here touches the network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mobq import fsutil, progress

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# ChatML, with Qwen3's switch that closes an empty thinking block when thinking is off.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}"
)


def corpus_text() -> str:
    return resources.files("mobq").joinpath("data/corpus.txt").read_text(encoding="utf-8")


def training_text(repeats: int = 4) -> str:
    """The corpus plus its question/answer pairs as ChatML turns, so chat prompts get answers."""
    import re

    text = corpus_text()
    pairs = re.findall(r"Question: (.*)\nAnswer: (.*)", text)
    chats = "".join(
        f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n" for q, a in pairs
    )
    return text + chats * repeats


def build_tokenizer(out_dir: Path, vocab_size: int = 1024) -> Path:
    """Byte-level BPE with ChatML specials, trained deterministically on the bundled corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_text().splitlines(keepends=True), trainer=trainer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "model_max_length": 32768,
        "chat_template": CHATML_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def extend_tokenizer(
    base_dir: Path, out_dir: Path, added: dict[int, str], config: dict[str, Any]
) -> Path:
    """A tokenizer that is `base_dir`'s plus special tokens at fixed ids, with its own config.

    Phi-4-mini's tokenizer is the o200k vocabulary plus chat tokens at ids 200018-200028;
    this rebuilds it from the base files without any download.
    """
    data = json.loads((Path(base_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    present = {entry["id"] for entry in data["added_tokens"]}
    for token_id, content in sorted(added.items()):
        if token_id in present:
            continue
        # transformers renumbers added tokens unknown to the model vocabulary; listing them
        # there too keeps the given ids (the C++ runner reads them from added_tokens).
        data["model"]["vocab"][content] = token_id
        data["added_tokens"].append(
            {
                "id": token_id,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def tokenizer_special_ids(tokenizer_dir: Path) -> dict[str, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    return {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}


@dataclass(frozen=True)
class TinySpec:
    """Shrinks a real architecture: same family and quirks, toy sizes."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    vocab_size: int | None = None  # None: the tokenizer's size rounded up to 64
    tie_word_embeddings: bool | None = None  # None: as the real architecture


# A SigLIP tower of toy size for multimodal architectures: 56x56 pixels in 14x14 patches, a 4x4
# grid that the projector average-pools to TINY_IMAGE_TOKENS soft tokens (2x2), as the full
# model pools its 64x64 patches to 256.
TINY_IMAGE_TOKENS = 4
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
}


def tiny_config(architecture: dict[str, Any], spec: TinySpec, vocab_size: int) -> dict[str, Any]:
    if isinstance(architecture.get("text_config"), dict):
        return _tiny_multimodal_config(architecture, spec, vocab_size)
    config = dict(architecture)
    config.update(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        vocab_size=vocab_size,
    )
    if "max_window_layers" in config:
        config["max_window_layers"] = spec.num_hidden_layers
    if spec.tie_word_embeddings is not None:
        config["tie_word_embeddings"] = spec.tie_word_embeddings
    _shrink_rope_factors(config, spec)
    return config


def _tiny_multimodal_config(
    architecture: dict[str, Any], spec: TinySpec, vocab_size: int
) -> dict[str, Any]:
    """Shrink the nested text decoder like a plain one, the vision tower to TINY_VISION.

    Image token ids move to the top of the toy vocabulary (the real ones lie past it), and
    the image becomes TINY_IMAGE_TOKENS soft tokens, pooled from the tower's patches.
    """
    config = dict(architecture)
    config["text_config"] = tiny_config(architecture["text_config"], spec, vocab_size)
    config["vision_config"] = {**architecture.get("vision_config", {}), **TINY_VISION}
    config["mm_tokens_per_image"] = TINY_IMAGE_TOKENS
    for offset, key in enumerate(("image_token_index", "boi_token_index", "eoi_token_index")):
        if key in config:
            config[key] = vocab_size - 1 - offset
    if spec.tie_word_embeddings is not None:
        config["tie_word_embeddings"] = spec.tie_word_embeddings
    return config


def _shrink_rope_factors(config: dict[str, Any], spec: TinySpec) -> None:
    """LongRoPE keeps one factor per rotary frequency: resample the real lists to the toy size.

    Sampling the real values (not ones) keeps the scaling non-trivial in tiny models.
    """
    scaling = config.get("rope_scaling") or config.get("rope_parameters")
    if not isinstance(scaling, dict):
        return
    partial = float(scaling.get("partial_rotary_factor") or config.get("partial_rotary_factor", 1))
    wanted = int(spec.head_dim * partial) // 2
    scaling = dict(scaling)
    for key in ("short_factor", "long_factor"):
        values = scaling.get(key)
        if isinstance(values, list) and values and len(values) != wanted:
            step = (len(values) - 1) / max(wanted - 1, 1)
            scaling[key] = [values[round(i * step)] for i in range(wanted)]
    config["rope_scaling" if "rope_scaling" in config else "rope_parameters"] = scaling


def save_model(
    config_dict: dict[str, Any],
    out_dir: Path,
    *,
    seed: int = 0,
    tokenizer_dir: Path | None = None,
    generation_config: dict[str, Any] | None = None,
) -> Path:
    """Instantiate a random-weight transformers model from a config dict and save it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    _perturb_norms(model, seed)
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    if generation_config is not None:
        (out_dir / "generation_config.json").write_text(json.dumps(generation_config, indent=2))
    if tokenizer_dir is not None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copyfile(Path(tokenizer_dir) / name, out_dir / name)
    return out_dir


def _perturb_norms(model: torch.nn.Module, seed: int) -> None:
    """Norm weights start at exactly one (or zero); random ones catch a wrong key map."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))


def train_briefly(
    model_dir: Path, tokenizer_dir: Path, steps: int, seq_len: int = 128, lr: float = 3e-3
) -> float:
    """A few hundred steps on the bundled corpus so the demo's output reads like text."""
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    ids = torch.tensor(tok.encode(training_text()).ids)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    loss_value = float("nan")
    with progress.task("training the demo model on the bundled corpus", total=steps) as advance:
        for _ in range(steps):
            starts = torch.randint(0, len(ids) - seq_len - 1, (8,), generator=generator)
            batch = torch.stack([ids[s : s + seq_len + 1] for s in starts])
            loss = model(batch[:, :-1], labels=batch[:, :-1]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = float(loss)
            advance(1)
    model.eval()
    model.save_pretrained(str(model_dir))
    return loss_value


def build_tiny_model(
    architecture: dict[str, Any],
    out_dir: Path,
    *,
    spec: TinySpec = TinySpec(),
    seed: int = 0,
    tokenizer_dir: Path | None = None,
    train_steps: int = 0,
) -> Path:
    """A tiny model of `architecture`'s family with the bundled (or given) tokenizer."""
    out_dir = Path(out_dir)
    with fsutil.atomic_path(out_dir, is_dir=True) as tmp:
        if tokenizer_dir is None:
            tokenizer_dir = build_tokenizer(tmp / "_tokenizer")
        ids = (
            tokenizer_special_ids(tokenizer_dir)
            if (Path(tokenizer_dir) / "tokenizer.json").is_file()
            else {}
        )
        vocab = spec.vocab_size or _round_up(_tokenizer_size(tokenizer_dir), 64)
        config = tiny_config(architecture, spec, vocab)
        eos = [i for i in (ids.get("<|im_end|>"), ids.get("<|endoftext|>")) if i is not None]
        if eos:
            config.update(eos_token_id=eos[0], bos_token_id=eos[-1], pad_token_id=eos[-1])
        generation = {"eos_token_id": eos, "do_sample": False} if eos else None
        save_model(
            config, tmp, seed=seed, tokenizer_dir=tokenizer_dir, generation_config=generation
        )
        if train_steps:
            loss = train_briefly(tmp, tokenizer_dir, train_steps)
            progress.info(f"demo model trained {train_steps} steps, final loss {loss:.2f}")
        fsutil.remove(tmp / "_tokenizer")
    return out_dir


def _tokenizer_size(tokenizer_dir: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).get_vocab_size(
        with_added_tokens=True
    )


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple
