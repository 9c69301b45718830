"""Stage `quantize`: torchao quantization exactly as the model cards do it, streamed.

Each weight is read, quantized and written before the next is read, so peak memory is one
tensor plus one output shard — never the whole model in fp32. The result is a Hugging Face
checkpoint (torchao safetensors + `quantization_config`) that transformers loads back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mobq import fsutil, progress
from mobq.checkpoint import (
    CheckpointReader,
    CheckpointWriter,
    checkpoint_bytes,
    copy_side_files,
    is_tied,
)
from mobq.errors import InputError
from mobq.families import family_for_config
from mobq.hfmodel import load_config
from mobq.schemes import (
    MODULE_SCHEMES,
    QuantOptions,
    Scheme,
    check_module_scheme_name,
)


@dataclass(frozen=True)
class Override:
    """Modules whose name fully matches `pattern` get module scheme `scheme`."""

    pattern: str
    scheme: str
    origin: str = "cli"

    @classmethod
    def parse(cls, text: str, origin: str = "cli") -> Override:
        if "=" not in text:
            raise InputError(f"--override must look like PATTERN=SCHEME, got {text!r}")
        pattern, scheme = text.rsplit("=", 1)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"--override pattern {pattern!r} is not a valid regex: {exc}") from exc
        check_module_scheme_name(scheme)
        return cls(pattern, scheme, origin)


@dataclass
class QuantPlan:
    """module name -> (kind, module scheme); `skipped` says why a module stays float."""

    modules: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def scheme_of(self, module: str) -> str | None:
        entry = self.modules.get(module)
        return entry[1] if entry and entry[1] != "none" else None

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, scheme in self.modules.values():
            key = f"{kind}:{scheme}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))


def quantizable_modules(config: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Linear and Embedding modules of the transformers model, built on the meta device."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    found: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            found[name] = ("linear", tuple(module.weight.shape))
        elif isinstance(module, torch.nn.Embedding):
            found[name] = ("embedding", tuple(module.weight.shape))
    return found


def make_plan(
    modules: dict[str, tuple[str, tuple[int, ...]]],
    scheme: Scheme,
    options: QuantOptions,
    overrides: list[Override],
) -> QuantPlan:
    plan = QuantPlan()
    for name, (kind, shape) in modules.items():
        chosen = scheme.linear if kind == "linear" else scheme.embedding
        for override in overrides:
            if re.fullmatch(override.pattern, name):
                chosen = override.scheme
                module_scheme = MODULE_SCHEMES[chosen]
                if kind not in module_scheme.kinds:
                    raise InputError(
                        f"override {override.pattern}={chosen} ({override.origin}) matches {kind} "
                        f"module '{name}', but {chosen} applies to {', '.join(sorted(module_scheme.kinds))} only"
                    )
                break
        if chosen is None or chosen == "none":
            plan.modules[name] = (kind, "none")
            continue
        group = MODULE_SCHEMES[chosen].group_size(options)
        if group and shape[1] % group:
            plan.modules[name] = (kind, "none")
            plan.skipped[name] = f"in_features {shape[1]} not divisible by group size {group}"
            continue
        plan.modules[name] = (kind, chosen)
    _require_some_linear_quantized(plan, scheme, options)
    return plan


def _require_some_linear_quantized(plan: QuantPlan, scheme: Scheme, options: QuantOptions) -> None:
    """A scheme whose group size divides none of the model's linears cannot apply to it."""
    linears = [name for name, (kind, _) in plan.modules.items() if kind == "linear"]
    if scheme.linear is None or not linears:
        return
    if all(name in plan.skipped for name in linears):
        widths = sorted(
            {int(why.split()[1]) for why in plan.skipped.values() if why.startswith("in_features")}
        )
        raise InputError(
            f"scheme {scheme.name} with group size {options.group_size} fits none of this model's linears "
            f"(in_features {', '.join(map(str, widths))}); pass a --group-size that divides them, e.g. 32"
        )


def quantize_weight(
    kind: str,
    weight: torch.Tensor,
    config: Any,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One weight through torchao's quantize_, via a throwaway module of the right type.

    GPU packings are made on the GPU (tinygemm's layout is the device's); the result comes
    back to the CPU so the shard writer can stream it.
    """
    if device == "cpu" and weight.shape[0] > ROWS_PER_CHUNK:
        chunked = _quantize_by_rows(kind, weight, config, dtype)
        if chunked is not None:
            return chunked
    return _quantize_whole(kind, weight, config, device, dtype)


# Rows quantized at once: bounds the float upcast and torchao's intermediates (a 151936-row
# lm_head in fp32 is 622 MB, and quantizing it whole needed ~2 GB more).
ROWS_PER_CHUNK = 8192


def _quantize_by_rows(
    kind: str, weight: torch.Tensor, config: Any, dtype: torch.dtype
) -> torch.Tensor | None:
    """Quantize row blocks and join them: identical to the whole tensor when scales are per row.

    Returns None (caller quantizes whole) for layouts whose quantization is not row-local.
    """
    from torchao.quantization import IntxUnpackedToInt8Tensor

    parts = []
    for start in range(0, weight.shape[0], ROWS_PER_CHUNK):
        part = _quantize_whole(kind, weight[start : start + ROWS_PER_CHUNK], config, "cpu", dtype)
        if not isinstance(part, IntxUnpackedToInt8Tensor) or part.block_size[0] != 1:
            return None
        parts.append(part)
    first = parts[0]
    joined = [torch.cat([getattr(p, name) for p in parts]) for name in first.tensor_data_names]
    del parts
    attributes = [getattr(first, name) for name in first.tensor_attribute_names]
    return type(first)(*joined, *attributes)


def _quantize_whole(
    kind: str, weight: torch.Tensor, config: Any, device: str, dtype: torch.dtype
) -> torch.Tensor:
    from torchao.quantization import quantize_

    weight = weight.to(device=device, dtype=dtype)
    if kind == "linear":
        module: torch.nn.Module = torch.nn.Linear(
            weight.shape[1], weight.shape[0], bias=False, device="meta"
        )
    else:
        module = torch.nn.Embedding(weight.shape[0], weight.shape[1], device="meta")
    module.weight = torch.nn.Parameter(weight, requires_grad=False)
    quantize_(module, config, filter_fn=lambda *_: True)
    quantized = module.weight.detach()
    return quantized if device == "cpu" else quantized.to("cpu")


def collapse_plan(plan: QuantPlan, options: QuantOptions) -> dict[str, Any]:
    """The plan as torchao FqnToConfig entries: per-layer names folded into `re:` patterns."""
    by_template: dict[str, set[str]] = {}
    names_of: dict[str, list[str]] = {}
    for name in plan.modules:
        template = re.sub(r"\.\d+\.", ".{L}.", name)
        scheme = plan.scheme_of(name) or "none"
        by_template.setdefault(template, set()).add(scheme)
        names_of.setdefault(template, []).append(name)
    entries: dict[str, Any] = {}
    for template, schemes in by_template.items():
        if len(schemes) == 1:
            (scheme,) = schemes
            if scheme == "none":
                continue
            key = (
                template
                if "{L}" not in template
                else "re:" + re.escape(template).replace(re.escape("{L}"), r"\d+")
            )
            entries[key] = MODULE_SCHEMES[scheme].torchao_config(options)
        else:
            for name in names_of[template]:
                scheme = plan.scheme_of(name)
                if scheme:
                    entries[name] = MODULE_SCHEMES[scheme].torchao_config(options)
    return entries


def torchao_quantization_config(plan: QuantPlan, options: QuantOptions) -> dict[str, Any]:
    """transformers' `quantization_config` for config.json, so from_pretrained loads it back."""
    from torchao.quantization import FqnToConfig
    from transformers import TorchAoConfig

    fqn_config = FqnToConfig(collapse_plan(plan, options))
    return TorchAoConfig(
        quant_type=fqn_config, include_input_output_embeddings=True, modules_to_not_convert=[]
    ).to_dict()


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    scheme: str
    options: QuantOptions
    plan_summary: dict[str, int]
    skipped: dict[str, str]
    overrides: list[dict[str, str]]
    quantization_config: dict[str, Any]
    bytes_in: int
    bytes_out: int
    server_target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "scheme": self.scheme,
            "group_size": self.options.group_size,
            "hqq": self.options.hqq,
            "server_target": self.server_target,
            "modules": self.plan_summary,
            "skipped": self.skipped,
            "overrides": self.overrides,
            "torchao_config": self.quantization_config,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


def quantize_checkpoint(
    model_dir: Path,
    out_dir: Path,
    scheme: Scheme,
    options: QuantOptions | None = None,
    overrides: list[Override] | None = None,
    source_id: str | None = None,
    plan: QuantPlan | None = None,
) -> QuantizeResult:
    """Quantize `model_dir` into `out_dir`; `source_id` (a hub id) names the base model in cards.

    `plan`: the module plan mobq.plan already made from this checkpoint's config (with these
    scheme, options and overrides); None makes it here.
    """
    overrides = overrides or []
    options = options or QuantOptions(group_size=scheme.default_group_size)
    config = load_config(model_dir)
    family = family_for_config(config, f"{model_dir}/config.json")
    if plan is None:
        plan = make_plan(quantizable_modules(config), scheme, options, overrides)
    placements = _placements(plan, options)
    for name, why in plan.skipped.items():
        progress.info(f"[yellow]kept in float[/]: {name} ({why})")
    configs = {
        name: MODULE_SCHEMES[s].torchao_config(options)
        for name, (_, s) in plan.modules.items()
        if s != "none"
    }
    with CheckpointReader(model_dir) as reader:
        if is_tied(config, reader, family.lm_head_key):
            raise InputError(
                f"{model_dir} has tied embeddings; run `mobq untie` first (export does it for you)"
            )
        bytes_in = checkpoint_bytes(model_dir)
        fsutil.ensure_free_disk(Path(out_dir).parent, bytes_in // 2, "the quantized checkpoint")
        with fsutil.atomic_path(Path(out_dir), is_dir=True) as tmp:
            writer = CheckpointWriter(tmp)
            with progress.task(f"quantizing to {scheme.name}", total=len(reader.names)) as advance:
                for name in reader.names:
                    module = name.rsplit(".", 1)[0]
                    tensor = reader.get(name)
                    if name.endswith(".weight") and module in configs:
                        device, dtype = placements[plan.modules[module][1]]
                        tensor = quantize_weight(
                            plan.modules[module][0], tensor, configs[module], device, dtype
                        )
                    writer.add(name, tensor)
                    del tensor
                    advance(1)
            writer.close()
            quant_config = torchao_quantization_config(plan, options)
            raw = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
            raw["quantization_config"] = quant_config
            (tmp / "config.json").write_text(json.dumps(raw, indent=2))
            copy_side_files(Path(model_dir), tmp)
            bytes_out = writer.total_bytes
            target = _write_server_card(tmp, scheme, options, plan, source_id or str(model_dir))
    return QuantizeResult(
        path=Path(out_dir),
        scheme=scheme.name,
        options=options,
        plan_summary=plan.summary(),
        skipped=plan.skipped,
        overrides=[
            {"pattern": o.pattern, "scheme": o.scheme, "origin": o.origin} for o in overrides
        ],
        quantization_config=quant_config,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        server_target=target,
    )


def _placements(plan: QuantPlan, options: QuantOptions) -> dict[str, tuple[str, torch.dtype]]:
    """Module scheme -> (device, dtype) its weights are quantized on; checks the device exists."""
    found: dict[str, tuple[str, torch.dtype]] = {}
    for _, name in plan.modules.values():
        device, dtype = MODULE_SCHEMES[name].placement(options)
        found[name] = (device, getattr(torch, dtype))
    if any(device == "cuda" for device, _ in found.values()) and not torch.cuda.is_available():
        target = options.server_target().name
        raise InputError(
            f"--target {target} packs int4 weights for its GPU's kernels and needs CUDA, which "
            "this host lacks; quantize on that GPU, or pass --target cpu to test here"
        )
    return found


def _write_server_card(
    directory: Path, scheme: Scheme, options: QuantOptions, plan: QuantPlan, source_id: str
) -> str | None:
    """Server checkpoints are published as they are: record the recipe and write the card."""
    if scheme.target != "server":
        return None
    from mobq.server import modelcard

    target = options.server_target()
    record = modelcard.QuantRecord.create(
        base_model=source_id,
        scheme=scheme.name,
        group_size=options.group_size,
        target=target.name,
        packing=target.packing,
        modules=plan.summary(),
        torchao_config=MODULE_SCHEMES[scheme.linear or "none"].torchao_config(options),
    )
    modelcard.write(directory, record)
    return target.name
