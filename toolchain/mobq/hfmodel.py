"""Loading transformers configs and models the way every stage needs them: fp32, eval, no
remote code.

transformers 5.23 leaves some non-persistent buffers unset when it loads a torchao-quantized
checkpoint: `_init_weights` is skipped for modules whose weights were loaded, and that is where
those buffers get their values. Gemma-3's `embed_scale` (sqrt(hidden)) then reads 0, which
zeroes every activation. They are restored here from the scalar each module keeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mobq.errors import CheckpointError, ModelNotFound, UnsupportedModel

# module attribute holding the true value -> the buffer that must carry it
SCALAR_BUFFERS = {"scalar_embed_scale": "embed_scale"}


def load_causal_lm(model_dir: Path, dtype: torch.dtype = torch.float32, **kwargs: Any) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, trust_remote_code=False, **kwargs
    )
    restore_scalar_buffers(model)
    return model.eval()


def restore_scalar_buffers(model: torch.nn.Module) -> list[str]:
    """Give each known scalar buffer its module's value; returns the names it had to fix."""
    fixed = []
    for name, module in model.named_modules():
        for attribute, buffer_name in SCALAR_BUFFERS.items():
            buffer = getattr(module, buffer_name, None)
            if not hasattr(module, attribute) or not isinstance(buffer, torch.Tensor):
                continue
            value = float(getattr(module, attribute))
            if buffer.is_meta or float(buffer) != value:
                setattr(module, buffer_name, torch.tensor(value, dtype=buffer.dtype))
                fixed.append(f"{name}.{buffer_name}")
    return fixed


def read_config_json(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFound(f"{directory} has no config.json") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc


def load_config(directory: Path) -> Any:
    """The transformers config object (normalized rope settings etc.), never remote code."""
    from transformers import AutoConfig

    raw = read_config_json(directory)
    if "model_type" not in raw:
        raise UnsupportedModel(
            f"{directory}/config.json has no model_type; is it a transformers model?"
        )
    try:
        return AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModel(
            f"{directory}/config.json: transformers cannot read model_type "
            f"'{raw.get('model_type')}': {' '.join(str(exc).split())[:200]}"
        ) from exc
