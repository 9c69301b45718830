"""Stage `untie`: give lm_head its own copy of the embedding so each can be quantized apart.

Phones want int8 embeddings (a gather) and int4 lm_head (a matmul); a tied checkpoint shares
one tensor. The untied directory hard-links the original shards (no extra disk) and adds one
small shard holding lm_head.weight, with config.json updated.

A multimodal checkpoint (Gemma-3 4B) exported as text takes its language model here: the
text decoder's tensors are streamed into a `*ForCausalLM` checkpoint (untied on the way),
the vision tower and projector are left out.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.checkpoint import (
    INDEX_FILE,
    CheckpointReader,
    CheckpointWriter,
    copy_side_files,
    is_tied,
    safetensors_files,
)
from mobq.errors import CheckpointError
from mobq.families import Family, family_for_config
from mobq.hfmodel import load_config


@dataclass(frozen=True)
class UntieResult:
    path: Path
    was_tied: bool
    copied_tensor: str | None
    dropped_tensors: int = 0  # multimodal: the vision tower's and projector's

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "was_tied": self.was_tied,
            "lm_head_from": self.copied_tensor,
            "dropped_tensors": self.dropped_tensors,
        }


def untie_checkpoint(model_dir: Path, out_dir: Path, *, multimodal: bool = False) -> UntieResult:
    """Write an untied copy of `model_dir` to `out_dir` (or report that none is needed).

    A multimodal checkpoint becomes its text decoder, or with `multimodal` stays whole.
    """
    config = load_config(model_dir)
    family = family_for_config(config, f"{model_dir}/config.json")
    if needs_text_decoder(config, family):
        if multimodal:
            return untie_multimodal(Path(model_dir), Path(out_dir), config, family)
        return extract_text_decoder(Path(model_dir), Path(out_dir), config, family)
    with CheckpointReader(model_dir) as reader:
        if not is_tied(config, reader, family.lm_head_key):
            return UntieResult(Path(model_dir), was_tied=False, copied_tensor=None)
        embedding = reader.get(family.embedding_key)  # read into memory the reader does not own
    with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
        weight_map = _link_shards(Path(model_dir), tmp)
        writer = CheckpointWriter(tmp / "lm_head_shard")
        writer.add(family.lm_head_key, embedding)
        (lm_file,) = writer.close()
        target = tmp / "model-lm_head.safetensors"
        lm_file.rename(target)
        shutil.rmtree(tmp / "lm_head_shard")
        weight_map[family.lm_head_key] = target.name
        index = {"metadata": {}, "weight_map": weight_map}
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2))
        _write_untied_config(Path(model_dir), tmp)
        copy_side_files(Path(model_dir), tmp)
    progress.info(f"lm_head.weight copied from {family.embedding_key} ({tuple(embedding.shape)})")
    return UntieResult(Path(out_dir), was_tied=True, copied_tensor=family.embedding_key)


def needs_text_decoder(config: Any, family: Family) -> bool:
    architectures = list(getattr(config, "architectures", None) or [])
    return (
        bool(family.text_decoder_prefixes)
        and getattr(config, "text_config", None) is not None
        and family.text_decoder_architecture not in architectures
    )


def text_decoder_name(name: str, prefixes: dict[str, str]) -> str | None:
    """The *ForCausalLM name of a multimodal tensor, None for the vision tower's and projector's."""
    for prefix, replacement in prefixes.items():
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return None


def extract_text_decoder(
    model_dir: Path, out_dir: Path, config: Any, family: Family
) -> UntieResult:
    """Stream the language model's tensors into an untied *ForCausalLM checkpoint."""
    return _rewrite_multimodal(
        model_dir,
        out_dir,
        dict(family.text_decoder_prefixes),
        family.embedding_key,
        family.lm_head_key,
        _text_config_dict(config, family),
        "taking the text decoder",
    )


def untie_multimodal(model_dir: Path, out_dir: Path, config: Any, family: Family) -> UntieResult:
    """The whole multimodal checkpoint under transformers 5's names, with its own lm_head."""
    raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    raw["tie_word_embeddings"] = False
    if isinstance(raw.get("text_config"), dict):
        raw["text_config"]["tie_word_embeddings"] = False
    return _rewrite_multimodal(
        model_dir,
        out_dir,
        dict(family.multimodal_prefixes),
        family.multimodal_embedding_key,
        family.lm_head_key,
        raw,
        "untying the multimodal checkpoint",
    )


def _rewrite_multimodal(
    model_dir: Path,
    out_dir: Path,
    prefixes: dict[str, str],
    embedding_key: str,
    lm_head_key: str,
    config_dict: dict[str, Any],
    what: str,
) -> UntieResult:
    """Stream the tensors `prefixes` keep, renamed, adding lm_head from the embedding if tied."""
    with CheckpointReader(model_dir) as reader:
        renamed = {name: text_decoder_name(name, prefixes) for name in reader.names}
        kept = {old: new for old, new in renamed.items() if new is not None}
        if embedding_key not in kept.values():
            raise CheckpointError(
                f"{model_dir}: no text decoder tensors found (expected names starting with "
                f"{', '.join(prefixes)}); is this a multimodal checkpoint of this family?"
            )
        tied = lm_head_key not in kept.values()
        with fsutil.atomic_path(out_dir, is_dir=True) as tmp:
            writer = CheckpointWriter(tmp)
            with progress.task(what, total=len(kept)) as advance:
                for old, new in kept.items():
                    tensor = reader.get(old)
                    writer.add(new, tensor)
                    if tied and new == embedding_key:
                        writer.add(lm_head_key, tensor)
                    del tensor
                    advance(1)
            writer.close()
            (tmp / "config.json").write_text(json.dumps(config_dict, indent=2))
            copy_side_files(model_dir, tmp)
    dropped = len(renamed) - len(kept)
    progress.info(f"{what}: {len(kept)} tensors kept, {dropped} left out")
    return UntieResult(
        out_dir,
        was_tied=tied,
        copied_tensor=embedding_key if tied else None,
        dropped_tensors=dropped,
    )


def exported_config(config: Any, family: Family) -> Any:
    """The config of what is exported: the text decoder's for a multimodal checkpoint."""
    if not needs_text_decoder(config, family):
        return config
    from transformers import AutoConfig

    return AutoConfig.for_model(**_text_config_dict(config, family))


def _text_config_dict(config: Any, family: Family) -> dict[str, Any]:
    """The nested text config as a standalone, untied *ForCausalLM config.json."""
    text = config.text_config.to_dict()
    text["architectures"] = [family.text_decoder_architecture]
    text["tie_word_embeddings"] = False
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if text.get(key) is None and getattr(config, key, None) is not None:
            text[key] = getattr(config, key)
    return text


def _link_shards(src: Path, dst: Path) -> dict[str, str]:
    """Hard-link safetensors shards; a legacy pickled checkpoint is rewritten as safetensors."""
    from safetensors import safe_open

    weight_map: dict[str, str] = {}
    shards = safetensors_files(src)
    if not shards:
        with CheckpointReader(src) as reader:
            writer = CheckpointWriter(dst / "converted")
            for name, tensor in reader.items():
                writer.add(name, tensor)
            shards = writer.close()
    for number, shard in enumerate(shards):
        name = f"model-base-{number:05d}.safetensors"
        fsutil.link_or_copy(shard.resolve(), dst / name)
        with safe_open(str(shard), framework="pt") as handle:
            weight_map.update(dict.fromkeys(handle.keys(), name))
    fsutil.remove(dst / "converted")
    return weight_map


def _write_untied_config(src: Path, dst: Path) -> None:
    raw = json.loads((src / "config.json").read_text(encoding="utf-8"))
    raw["tie_word_embeddings"] = False
    if isinstance(raw.get("text_config"), dict):
        raw["text_config"]["tie_word_embeddings"] = False
    (dst / "config.json").write_text(json.dumps(raw, indent=2))
