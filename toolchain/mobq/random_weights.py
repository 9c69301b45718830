"""Full-size random-weight checkpoints from a recipe's architecture snapshot, fully offline.

Speed and memory do not depend on weight values, so benchmarks can run at full size without
downloading anything. Tensors are generated one at a time in bf16 and streamed into shards:
no fp32 copy of the model ever exists.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from mobq import fsutil, progress
from mobq.cache import cache_root, stage_key
from mobq.checkpoint import TOKENIZER_FILES, CheckpointWriter
from mobq.recipes import Recipe

INIT_STD = 0.02
ROWS_PER_CHUNK = 4096


def meta_model(config: Any) -> Any:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=False)


def parameter_shapes(config: Any, model: Any = None) -> dict[str, tuple[int, ...]]:
    """Checkpoint tensor names and shapes, from the transformers model built on meta."""
    model = model if model is not None else meta_model(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    if tied:
        for name in [n for n in shapes if n.endswith("lm_head.weight")]:
            shapes.pop(name)
    return shapes


def norm_centres(model: Any) -> dict[str, float]:
    """Each 1-D weight's value under the model's own initialization, by checkpoint name.

    Most norms scale by `w` (initialized to 1) but Gemma's scale by `1 + w` (initialized to 0).
    Centring random norm weights on 1 there doubles every norm's output, and the random network
    turns chaotic: a 60 dB perturbation falls to ~32 dB in six full-size Gemma-3 layers (~55 dB
    when centred on 0), so a 34-layer export could never meet the verify gate. The centre is
    read from transformers' `_init_weights` on a CPU copy of each small owning module.
    """
    centres: dict[str, float] = {}
    by_class: dict[tuple[str, str], float] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if param.dim() != 1 or param_name.endswith("bias"):
                continue
            key = (type(module).__qualname__, param_name)
            if key not in by_class:
                by_class[key] = _initial_value(model, module, param_name)
            centres[f"{module_name}.{param_name}" if module_name else param_name] = by_class[key]
    return centres


def _initial_value(model: Any, module: torch.nn.Module, param_name: str) -> float:
    if sum(p.numel() for p in module.parameters()) > 1 << 22:  # not a norm: don't materialize
        return 1.0
    probe = copy.deepcopy(module).to_empty(device="cpu")
    with torch.no_grad():
        getattr(probe, param_name).fill_(math.nan)
        try:
            model._init_weights(probe)
        except Exception:  # an init that needs more than the module: keep the usual 1
            return 1.0
        value = float(getattr(probe, param_name).float().mean())
    return value if math.isfinite(value) else 1.0


def random_tensor(
    name: str, shape: tuple[int, ...], generator: torch.Generator, centre: float = 1.0
) -> torch.Tensor:
    if len(shape) == 1:
        if name.endswith("bias"):
            return torch.zeros(shape, dtype=torch.bfloat16)
        return (centre + 0.1 * torch.randn(shape, generator=generator)).to(torch.bfloat16)
    out = torch.empty(shape, dtype=torch.bfloat16)
    rows = out.view(shape[0], -1)
    for start in range(0, shape[0], ROWS_PER_CHUNK):
        block = rows[start : start + ROWS_PER_CHUNK]
        block.copy_(torch.randn(block.shape, generator=generator) * INIT_STD)
    return out


def build(
    recipe: Recipe, out_dir: Path, *, seed: int = 0, tokenizer_dir: Path | None = None
) -> Path:
    from transformers import AutoConfig

    architecture = {**recipe.architecture, "dtype": "bfloat16"}
    config = AutoConfig.for_model(**architecture)
    model = meta_model(config)
    shapes, centres = parameter_shapes(config, model), norm_centres(model)
    with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
        (tmp / "config.json").write_text(json.dumps(architecture, indent=2))
        writer = CheckpointWriter(tmp)
        generator = torch.Generator().manual_seed(seed)
        with progress.task(f"random weights for {recipe.name}", total=len(shapes)) as advance:
            for name, shape in shapes.items():
                writer.add(name, random_tensor(name, shape, generator, centres.get(name, 1.0)))
                advance(1)
        writer.close()
        _add_tokenizer(recipe, tmp, tokenizer_dir)
    return Path(out_dir)


def _add_tokenizer(recipe: Recipe, directory: Path, tokenizer_dir: Path | None) -> None:
    """The given tokenizer, else the real one if the hub cache has it, else a synthetic one."""
    source = tokenizer_dir or _cached_hub_tokenizer(recipe)
    if source is None:
        from mobq.tinylm import build_tokenizer

        progress.info("no tokenizer of this model offline: using mobq's synthetic ChatML tokenizer")
        source = build_tokenizer(directory / "_tokenizer")
        ids = _special_ids(source)
        eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
        (directory / "generation_config.json").write_text(
            json.dumps({"eos_token_id": eos}, indent=2)
        )
        # The snapshot's token ids belong to the real tokenizer, not this one.
        config = json.loads((directory / "config.json").read_text())
        config.update(eos_token_id=eos[0], bos_token_id=eos[1], pad_token_id=eos[1])
        (directory / "config.json").write_text(json.dumps(config, indent=2))
    for name in (*TOKENIZER_FILES, "generation_config.json"):
        if (Path(source) / name).is_file() and not (directory / name).exists():
            shutil.copyfile(Path(source) / name, directory / name)
    fsutil.remove(directory / "_tokenizer")


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    from mobq.tinylm import tokenizer_special_ids

    return tokenizer_special_ids(tokenizer_dir)


def _cached_hub_tokenizer(recipe: Recipe) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                recipe.hub_id,
                revision=recipe.revision,
                allow_patterns=[*TOKENIZER_FILES, "generation_config.json"],
                local_files_only=True,
            )
        )
    except Exception:  # not cached: fall back to the synthetic tokenizer
        return None
    return path if (path / "tokenizer.json").is_file() else None


def cached_build(recipe: Recipe, *, seed: int = 0, tokenizer_dir: Path | None = None) -> Path:
    """Build once per (architecture, seed, tokenizer) and reuse."""
    key = stage_key(
        "random-weights",
        architecture=recipe.architecture,
        seed=seed,
        tokenizer=str(tokenizer_dir) if tokenizer_dir else None,
        version=2,  # 2: norm weights centred where the model's own init centres them
    )
    directory = cache_root() / "random" / f"{recipe.name}-{key[:16]}"
    if (directory / "config.json").is_file():
        return directory
    needed = _estimated_bytes(recipe)
    fsutil.ensure_free_disk(directory.parent, needed, f"random weights of {recipe.name}")
    return build(recipe, directory, seed=seed, tokenizer_dir=tokenizer_dir)


def _estimated_bytes(recipe: Recipe) -> int:
    from transformers import AutoConfig

    config = AutoConfig.for_model(**recipe.architecture)
    total = 0
    for shape in parameter_shapes(config).values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total * 2
