"""Stage `convert`: Hugging Face keys -> ExecuTorch llama keys, and params.json from config.json.

The key map is the family's one templated table; the tensor set must match it exactly
(nothing missing, nothing extra), because ExecuTorch silently ignores unexpected keys and a
wrong map would export garbage without an error. Fused tensors (Phi-3's qkv_proj and
gate_up_proj) are the family's `splits`: cut into row blocks whose sizes come from params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.checkpoint import (
    PARAMS_FILE,
    CheckpointReader,
    CheckpointWriter,
    checkpoint_bytes,
    copy_side_files,
)
from mobq.errors import CheckpointError
from mobq.families import Family, Split, expand_keys, family_for_config, text_config
from mobq.hfmodel import load_config


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    family: str
    params: dict[str, Any]
    tensors: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "family": self.family,
            "params": self.params,
            "tensors": self.tensors,
        }


def derive_params(config: Any, family: Family) -> dict[str, Any]:
    """ExecuTorch ModelArgs fields for this architecture, from config.json alone."""
    return family.model_args(config)


def key_map(config: Any, family: Family) -> dict[str, str]:
    """HF name -> ExecuTorch name for every tensor that is renamed as it is."""
    n_layers = text_config(config).num_hidden_layers
    return {hf: et for et, hf in expand_keys(family.keys_for(config), n_layers).items()}


@dataclass(frozen=True)
class RowBlock:
    name: str  # ExecuTorch tensor
    start: int
    stop: int


def split_map(config: Any, family: Family, params: dict[str, Any]) -> dict[str, list[RowBlock]]:
    """HF name -> the ExecuTorch tensors cut from its rows, for the family's fused tensors."""
    n_layers = text_config(config).num_hidden_layers
    out: dict[str, list[RowBlock]] = {}
    for split in family.splits:
        for layer in _layers_of(split, n_layers):
            blocks, start = [], 0
            for target, rows in zip(split.targets, split.rows(params), strict=True):
                blocks.append(RowBlock(target.replace("{L}", layer), start, start + rows))
                start += rows
            out[split.source.replace("{L}", layer)] = blocks
    return out


def _layers_of(split: Split, n_layers: int) -> list[str]:
    return [str(layer) for layer in range(n_layers)] if "{L}" in split.source else [""]


def cut_rows(name: str, tensor: Any, blocks: list[RowBlock]) -> list[tuple[str, Any]]:
    """Row slices of a fused tensor; its row count must be exactly the blocks' total."""
    if tensor.shape[0] != blocks[-1].stop:
        raise CheckpointError(
            f"{name} has {tensor.shape[0]} rows but config.json implies {blocks[-1].stop} "
            f"({' + '.join(str(b.stop - b.start) for b in blocks)}); the checkpoint does not "
            "match its config"
        )
    # narrow() keeps torchao's row-wise quantized tensors quantized (scales are per row);
    # clone() so the parts do not share storage, which safetensors refuses.
    return [(b.name, tensor.narrow(0, b.start, b.stop - b.start).clone()) for b in blocks]


def check_tensor_set(names: list[str], mapping: dict[str, Any], where: Path) -> None:
    present = set(names)
    missing = sorted(set(mapping) - present)
    extra = sorted(present - set(mapping))
    if missing:
        raise CheckpointError(
            f"{where}: missing tensors for this family's key map: {_short(missing)}; "
            "was the checkpoint untied (`mobq untie`) and saved completely?"
        )
    if extra:
        raise CheckpointError(
            f"{where}: tensors the key map does not cover (they would be silently dropped): {_short(extra)}"
        )


def _short(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def convert_checkpoint(model_dir: Path, out_dir: Path) -> ConvertResult:
    config = load_config(model_dir)
    family = family_for_config(config, f"{model_dir}/config.json")
    params = derive_params(config, family)
    mapping = key_map(config, family)
    splits = split_map(config, family, params)
    with CheckpointReader(model_dir) as reader:
        check_tensor_set(reader.names, {**mapping, **dict.fromkeys(splits, "")}, Path(model_dir))
        fsutil.ensure_free_disk(
            Path(out_dir).parent, checkpoint_bytes(model_dir), "the converted checkpoint"
        )
        with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
            writer = CheckpointWriter(tmp)
            with progress.task(
                "renaming tensors to ExecuTorch's layout", total=len(mapping) + len(splits)
            ) as advance:
                for hf_name in reader.names:
                    tensor = reader.get(hf_name)
                    if hf_name in splits:
                        for et_name, block in cut_rows(hf_name, tensor, splits[hf_name]):
                            writer.add(et_name, block)
                    else:
                        writer.add(mapping[hf_name], tensor)
                    advance(1)
            writer.close()
            (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2))
            (tmp / "source_config.json").write_text(
                (Path(model_dir) / "config.json").read_text(encoding="utf-8")
            )
            copy_side_files(Path(model_dir), tmp)
    tensors = len(mapping) + sum(len(blocks) for blocks in splits.values())
    return ConvertResult(Path(out_dir), family.name, params, tensors)
