"""Stage `convert`: Hugging Face keys -> ExecuTorch llama keys, and params.json from config.json.

The key map is the family's one templated table; the tensor set must match it exactly
(nothing missing, nothing extra), because ExecuTorch silently ignores unexpected keys and a
wrong map would export garbage without an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobq import fsutil, progress
from mobq.checkpoint import CheckpointReader, CheckpointWriter, checkpoint_bytes
from mobq.errors import CheckpointError
from mobq.families import Family, expand_keys, family_for_config, text_config
from mobq.source import load_config
from mobq.untie import copy_side_files

PARAMS_FILE = "params.json"


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
    """HF name -> ExecuTorch name for every tensor this checkpoint must hold."""
    n_layers = text_config(config).num_hidden_layers
    return {hf: et for et, hf in expand_keys(family.keys_for(config), n_layers).items()}


def check_tensor_set(names: list[str], mapping: dict[str, str], where: Path) -> None:
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


def run(model_dir: Path, out_dir: Path) -> ConvertResult:
    config = load_config(model_dir)
    family = family_for_config(config, f"{model_dir}/config.json")
    params = derive_params(config, family)
    mapping = key_map(config, family)
    with CheckpointReader(model_dir) as reader:
        check_tensor_set(reader.names, mapping, Path(model_dir))
        fsutil.ensure_free_disk(
            Path(out_dir).parent, checkpoint_bytes(model_dir), "the converted checkpoint"
        )
        with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
            writer = CheckpointWriter(tmp)
            with progress.task(
                "renaming tensors to ExecuTorch's layout", total=len(mapping)
            ) as advance:
                for hf_name in reader.names:
                    writer.add(mapping[hf_name], reader.get(hf_name))
                    advance(1)
            writer.close()
            (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2))
            (tmp / "source_config.json").write_text(
                (Path(model_dir) / "config.json").read_text(encoding="utf-8")
            )
            copy_side_files(Path(model_dir), tmp)
    return ConvertResult(Path(out_dir), family.name, params, len(mapping))
