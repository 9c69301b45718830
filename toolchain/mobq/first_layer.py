"""The first-layer check: layer 0 of the program against layer 0 of the eager model, first.

The whole-program gate (mobq.verify) runs after the full lowering, 20 minutes at Qwen3-4B, and
at 36 layers two correct 8da4w implementations drift apart (docs/performance.md), so its
margin is small. One layer has no such drift. Before the full lowering, the export stage cuts
both checkpoints down to their first decoder layer (embedding, layer 0, final norm, output),
lowers that model with the same options in the same child process, and compares its logits
with the cut eager quantized model on verify's prompts. A wrong kernel, scale or weight layout
then fails within a minute or two, naming layer 0.

Which tensors belong to a layer is read from the family's key table (the `{L}` templates), and
the cut config from the model's own config.json and params.json: nothing is written by hand.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mobq import progress, verify
from mobq.checkpoint import (
    PARAMS_FILE,
    CheckpointReader,
    CheckpointWriter,
    copy_side_files,
)
from mobq.convert import check_tensor_set, key_map, split_map
from mobq.errors import CheckpointError, VerificationFailed
from mobq.families import Family, family_for_config
from mobq.hfmodel import load_config, read_config_json
from mobq.metadata import PromptFormat
from mobq.pte import isolate
from mobq.pte.lowering import ExportOptions

# Min logit SQNR of the 1-layer program against the 1-layer eager quantized model, measured
# (8da4w, random weights, verify's 3 prompts = 15 steps, AMD EPYC; docs/performance.md):
#   correct program:           tiny Qwen3 129.1 dB, Qwen3-0.6B width 33.5 dB, Qwen3-4B width 32.2 dB
#   doubled w2 scale, layer 0: tiny Qwen3  14.6 dB, Qwen3-0.6B width 10.4 dB, Qwen3-4B width 15.4 dB
# A correct program's steps are at 120-130 dB except where XNNPACK and torchao pick different
# int8 parameters for one token's activations (executorch-facts: zero point anchored on either
# side); each such token costs ~32-35 dB, and a token's path has five activation
# quantizations (q/k/v, o_proj, w1/w3, w2, output): all five at once would be ~26 dB (estimated).
# The gate sits between: 7 dB below the lowest correct program, 10 dB above the bug.
THRESHOLD_DB = 25.0
LAYERS = 1
# Shallower models are their own first-layer check: lowering them whole costs about what the
# check does (tiny 2-layer Qwen3: ~45 s each here), and two layers leave 8da4w's roundings no
# depth to grow in, so the whole-program gate is as precise there.
MIN_MODEL_LAYERS = 3
SOURCE_CONFIG = "source_config.json"  # convert's copy of the quantized checkpoint's config.json


@dataclass(frozen=True)
class FirstLayerResult:
    layers: int
    steps: int
    sqnr_db_min: float
    sqnr_db_mean: float
    top1: float
    threshold_db: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.sqnr_db_min >= self.threshold_db

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def layer_prefixes(templates: list[str]) -> tuple[str, ...]:
    """'model.layers.' from 'model.layers.{L}.mlp.down_proj.weight': where layer names start."""
    return tuple(sorted({t.split("{L}", 1)[0] for t in templates if "{L}" in t}))


def layer_of(name: str, prefixes: tuple[str, ...]) -> int | None:
    """The decoder layer a tensor belongs to, or None for the embedding, norm and output."""
    for prefix in prefixes:
        if name.startswith(prefix):
            index = name[len(prefix) :].split(".", 1)[0]
            if index.isdigit():
                return int(index)
    return None


def _table_sides(family: Family, config: Any) -> tuple[list[str], list[str]]:
    """(ExecuTorch-side templates, Hugging Face-side templates) of the family's key table."""
    keys = family.keys_for(config)
    executorch = [*keys, *(t for split in family.splits for t in split.targets)]
    hugging_face = [*keys.values(), *(split.source for split in family.splits)]
    return executorch, hugging_face


def cut_config(raw: dict[str, Any], layers: int) -> dict[str, Any]:
    """config.json of the first `layers` decoder layers (per-layer lists cut to match)."""
    out = json.loads(json.dumps(raw))
    text = out.get("text_config", out)
    total = text["num_hidden_layers"]
    text["num_hidden_layers"] = layers
    if isinstance(text.get("layer_types"), list) and len(text["layer_types"]) == total:
        text["layer_types"] = text["layer_types"][:layers]
    if isinstance(text.get("max_window_layers"), int):
        text["max_window_layers"] = min(text["max_window_layers"], layers)
    return out


def _copy_layers(src: Path, dst: Path, prefixes: tuple[str, ...], layers: int) -> list[str]:
    """Stream the tensors of the first `layers` layers and every non-layer tensor, one by one."""
    kept = []
    with CheckpointReader(src) as reader:
        writer = CheckpointWriter(dst)
        for name in reader.names:
            layer = layer_of(name, prefixes)
            if layer is None or layer < layers:
                writer.add(name, reader.get(name))
                kept.append(name)
        writer.close()
    if not any(layer_of(name, prefixes) == 0 for name in kept):
        raise CheckpointError(
            f"{src}: no tensor of layer 0 under {', '.join(prefixes)}; the family's key table "
            "does not describe this checkpoint"
        )
    return kept


def cut_reference(
    reference_dir: Path, out: Path, family: Family, config: Any, layers: int = LAYERS
) -> Path:
    """The quantized Hugging Face checkpoint (verify's eager reference) cut to `layers` layers."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(
        json.dumps(cut_config(read_config_json(reference_dir), layers), indent=2)
    )
    copy_side_files(reference_dir, out)
    prefixes = layer_prefixes(_table_sides(family, config)[1])
    kept = _copy_layers(reference_dir, out, prefixes, layers)
    # Nothing missing, nothing extra: exactly the key map of a `layers`-layer model.
    cut = load_config(out)
    params = family.model_args(cut)
    check_tensor_set(kept, {**key_map(cut, family), **split_map(cut, family, params)}, out)
    return out


def cut_converted(
    converted_dir: Path, out: Path, family: Family, config: Any, layers: int = LAYERS
) -> Path:
    """The converted (ExecuTorch llama layout) checkpoint cut to `layers` layers.

    Its tensor set is checked where it is loaded: the llama builder refuses missing or
    unexpected tensors against ModelArgs of `layers` layers.
    """
    out.mkdir(parents=True)
    params = json.loads((converted_dir / PARAMS_FILE).read_text())
    params["n_layers"] = layers
    (out / PARAMS_FILE).write_text(json.dumps(params, indent=2))
    if (converted_dir / SOURCE_CONFIG).is_file():
        source = json.loads((converted_dir / SOURCE_CONFIG).read_text(encoding="utf-8"))
        (out / SOURCE_CONFIG).write_text(json.dumps(cut_config(source, layers), indent=2))
    copy_side_files(converted_dir, out)
    _copy_layers(converted_dir, out, layer_prefixes(_table_sides(family, config)[0]), layers)
    return out


def check(
    converted_dir: Path,
    reference_dir: Path,
    tokenizer_dir: Path,
    options: ExportOptions,
    methods: dict[str, Any],
    *,
    prompt_format: PromptFormat | None,
    bos_id: int | None,
    workdir: Path,
    threshold_db: float = THRESHOLD_DB,
    decode_steps: int = 4,
) -> FirstLayerResult:
    """Lower the first layer alone (in the export child) and compare it with eager."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="first-layer-", dir=workdir) as scratch:
        work = Path(scratch)
        config = load_config(reference_dir)
        family = family_for_config(config, f"{reference_dir}/config.json")
        with progress.task(f"cutting both checkpoints to {LAYERS} layer"):
            converted = cut_converted(Path(converted_dir), work / "converted", family, config)
            reference = cut_reference(Path(reference_dir), work / "reference", family, config)
        pte = work / "first-layer.pte"
        isolate.export_in_child("llama", converted, pte, options, methods)
        prompts = verify.prompt_token_ids(tokenizer_dir, prompt_format, bos_id)
        splits = verify.split_prompts(prompts, options.seq_len - 1, options.ctx, decode_steps)
        expected = verify._reference_steps(reference, splits, f"eager model, {LAYERS} layer")
        got = verify._program_steps(pte, splits)
    comparisons = verify.compare_steps(splits, expected, got)
    values = [c.sqnr_db for c in comparisons]
    finite = [v for v in values if math.isfinite(v)] or [200.0]
    return FirstLayerResult(
        layers=LAYERS,
        steps=len(comparisons),
        sqnr_db_min=round(min(values), 2),
        sqnr_db_mean=round(sum(finite) / len(finite), 2),
        top1=round(sum(c.top1_match for c in comparisons) / len(comparisons), 4),
        threshold_db=threshold_db,
        seconds=round(time.perf_counter() - start, 1),
    )


def require_pass(result: FirstLayerResult, reference_name: str) -> None:
    """A one-line VerificationFailed unless layer 0 agreed with the eager model's."""
    if result.passed:
        return
    raise VerificationFailed(
        f"layer 0 of the program disagrees with layer 0 of the {reference_name}: SQNR "
        f"{result.sqnr_db_min:.1f} dB (min over {result.steps} steps of a {result.layers}-layer "
        f"program) is below the first-layer gate of {result.threshold_db:g} dB (a wrong kernel, "
        "scale or weight layout?); stopped before the full lowering, no model.pte was written"
    )
