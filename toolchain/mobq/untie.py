"""Stage `untie`: give lm_head its own copy of the embedding so each can be quantized apart.

Phones want int8 embeddings (a gather) and int4 lm_head (a matmul); a tied checkpoint shares
one tensor. The untied directory hard-links the original shards (no extra disk) and adds one
small shard holding lm_head.weight, with config.json updated.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.checkpoint import INDEX_FILE, CheckpointReader, CheckpointWriter, safetensors_files
from mobq.families import family_for_config, text_config
from mobq.source import load_config

SIDE_FILES = ("generation_config.json",)


@dataclass(frozen=True)
class UntieResult:
    path: Path
    was_tied: bool
    copied_tensor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "was_tied": self.was_tied,
            "lm_head_from": self.copied_tensor,
        }


def is_tied(config: Any, reader: CheckpointReader, lm_head_key: str) -> bool:
    tied = bool(
        getattr(
            text_config(config),
            "tie_word_embeddings",
            getattr(config, "tie_word_embeddings", False),
        )
    )
    return tied or lm_head_key not in reader


def run(model_dir: Path, out_dir: Path) -> UntieResult:
    """Write an untied copy of `model_dir` to `out_dir` (or report that none is needed)."""
    config = load_config(model_dir)
    family = family_for_config(config, f"{model_dir}/config.json")
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


def copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer and generation settings travel with every stage's output."""
    from mobq.source import TOKENIZER_FILES

    for name in (*TOKENIZER_FILES, *SIDE_FILES):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
