"""The model card (README.md) of a server checkpoint, rendered from what mobq recorded.

`quantize` writes `mobq_quantize.json` (the recipe, the exact torchao config, versions) beside
the weights; `bench-gpu --save` adds measured figures; the card is always re-rendered from
those records, so it never claims a figure nobody measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobq import fsutil
from mobq.errors import InputError

RECORD_FILE = "mobq_quantize.json"
FIGURES_FILE = "mobq_gpu_bench.json"
CARD_FILE = "README.md"
VERSION_PACKAGES = ("mobq", "torch", "torchao", "transformers")


@dataclass
class QuantRecord:
    base_model: str
    scheme: str
    group_size: int
    target: str
    packing: str | None
    modules: dict[str, int]
    torchao_config: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def create(cls, *, torchao_config: Any, **fields: Any) -> QuantRecord:
        from torchao.core.config import config_to_dict

        from mobq.hostinfo import versions

        found = versions()
        return cls(
            torchao_config=config_to_dict(torchao_config),
            versions={name: found.get(name, "not installed") for name in VERSION_PACKAGES},
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **fields,
        )

    @classmethod
    def load(cls, directory: Path) -> QuantRecord:
        path = Path(directory) / RECORD_FILE
        if not path.is_file():
            raise InputError(
                f"{directory} has no {RECORD_FILE}: it was not written by "
                "`mobq quantize --scheme int4-hqq`; quantize the model with mobq first"
            )
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def write(directory: Path, record: QuantRecord) -> None:
    fsutil.write_json(Path(directory) / RECORD_FILE, asdict(record))
    fsutil.write_text(Path(directory) / CARD_FILE, render(directory))


def save_figures(directory: Path, figures: dict[str, Any]) -> None:
    """Keep a benchmark's figures beside the checkpoint and put them in its card."""
    QuantRecord.load(directory)  # a card needs the recipe: refuse before writing anything
    fsutil.write_json(Path(directory) / FIGURES_FILE, figures)
    fsutil.write_text(Path(directory) / CARD_FILE, render(directory))


def load_figures(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / FIGURES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def render(directory: Path, repo_id: str | None = None) -> str:
    """The card's markdown; `repo_id` (known at publish time) fills the usage snippets."""
    record = QuantRecord.load(directory)
    figures = load_figures(directory)
    repo = repo_id or "USER/REPO"
    title = record.base_model.rstrip("/").split("/")[-1]
    parts = [
        _front_matter(record),
        f"# {title} INT4 (torchao int4 weight-only, HQQ)\n",
        f"`{record.base_model}` quantized with mobq and torchao: every linear "
        f"layer (lm_head included) to int4 in groups of {record.group_size} with HQQ-chosen "
        f"scales; embeddings, norms and activations stay {_run_dtype(record)}.\n",
        _recipe_section(record),
        _usage_section(record, repo),
        _figures_section(figures),
        _reproduce_section(record),
    ]
    return "\n".join(part for part in parts if part)


def _front_matter(record: QuantRecord) -> str:
    from huggingface_hub import ModelCardData

    base = record.base_model
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        base_model=[base] if "/" in base and not Path(base).exists() else None,
        tags=["torchao", "int4", "hqq", "mobq"],
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _recipe_section(record: QuantRecord) -> str:
    packing = record.packing or "none (IntxWeightOnlyConfig int4, CPU fallback)"
    rows = [
        ("scheme", record.scheme),
        ("torchao config", _config_name(record)),
        ("group size", str(record.group_size)),
        ("qparams", "HQQ"),
        ("target / packing", f"{record.target} / {packing}"),
        ("modules", ", ".join(f"{k} x{v}" for k, v in record.modules.items())),
        ("made with", ", ".join(f"{k} {v}" for k, v in record.versions.items())),
        ("made on", record.created),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    note = ""
    if record.packing is None:
        note = (
            "\n> This checkpoint uses the CPU fallback format, meant for testing; quantize on the "
            "GPU you serve from (`--target h100` or `a100`) for the int4 GPU kernels.\n"
        )
    return f"## Recipe\n\n| | |\n| --- | --- |\n{table}\n{note}"


def _config_name(record: QuantRecord) -> str:
    name = record.torchao_config.get("_type", "?")
    data = record.torchao_config.get("_data", {})
    keys = ("group_size", "int4_packing_format", "int4_choose_qparams_algorithm")
    args = ", ".join(f"{k}={_plain(data[k])!r}" for k in keys if k in data)
    return f"`{name}({args})`" if args else f"`{name}`"


def _plain(value: Any) -> Any:
    """config_to_dict writes enums as {'_type': ..., '_data': value}."""
    return value.get("_data", value) if isinstance(value, dict) else value


def _run_dtype(record: QuantRecord) -> str:
    return "bf16" if record.packing is not None else "float32"


def _usage_section(record: QuantRecord, repo: str) -> str:
    gpu = record.packing is not None
    device, dtype = ("cuda", "bfloat16") if gpu else ("cpu", "float32")
    transformers = (
        "```python\n"
        "import torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'model = AutoModelForCausalLM.from_pretrained("{repo}", dtype=torch.{dtype}, '
        f'device_map="{device}")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
        'messages = [{"role": "user", "content": "Give me a short introduction to LLMs."}]\n'
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, "
        f'return_tensors="pt", return_dict=True).to("{device}")\n'
        "out = model.generate(**inputs, max_new_tokens=256"
        + (', cache_implementation="static")\n' if gpu else ")\n")
        + 'print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:]))\n'
        "```\n"
    )
    section = f"## Use with transformers\n\nNeeds `torchao` installed.\n\n{transformers}"
    if gpu:
        section += (
            "\n## Serve with vLLM\n\n"
            f"```bash\nvllm serve {repo} --dtype bfloat16\n```\n\n"
            "vLLM reads the torchao `quantization_config` in config.json; torchao must be "
            "installed in vLLM's environment.\n"
        )
    return section


def _figures_section(figures: dict[str, Any] | None) -> str:
    if not figures or not figures.get("baseline"):
        return "## Measured\n\nNo figures measured yet (`mobq bench-gpu DIR --baseline BF16_DIR --save`).\n"
    quantized, baseline = figures["quantized"], figures["baseline"]
    settings = figures["settings"]
    rows = [
        ("peak GPU memory reserved, load + generate (GB)", "peak_reserved_gb", ".2f"),
        ("peak GPU memory allocated, load + generate (GB)", "peak_allocated_gb", ".2f"),
        ("peak GPU memory allocated, generate only (GB)", "generate_peak_allocated_gb", ".2f"),
        ("weights on GPU (GB)", "weights_gb", ".2f"),
        ("latency, batch 1 (s)", "latency_s", ".2f"),
        ("decode tokens/s", "tokens_per_s", ".1f"),
    ]
    table = "\n".join(
        f"| {label} | {format(baseline[key], fmt)} | {format(quantized[key], fmt)} |"
        for label, key, fmt in rows
        if key in baseline and key in quantized  # figures saved before a field existed
    )
    mode = "eager, dynamic cache"
    if settings["compile"]:
        mode = f"static cache + torch.compile ({settings.get('compile_mode', 'reduce-overhead')})"
        if settings.get("decoder") == "loop":
            mode += ", mobq's greedy decode loop"
    return (
        "## Measured\n\n"
        f"On {figures['gpu']} ({figures['versions']}), batch 1, {settings['prompt_tokens']} "
        f"prompt tokens (chat template) and {settings['new_tokens']} generated, {mode}, median of "
        f"{settings['runs']} runs after {settings.get('warmup', 0)} warm-ups. Peak memory is "
        "`torch.cuda.max_memory_reserved()` / `max_memory_allocated()` from before "
        "`from_pretrained` to the end of the last `generate`; 'generate only' resets the peak "
        "after loading. Random weights of the same architecture where the base model was "
        "random (speed and memory do not depend on weight values).\n\n"
        "| | bf16 | int4 HQQ |\n| --- | --- | --- |\n"
        f"{table}\n\n"
        f"**{figures['memory_reduction']:.0%} less peak memory, "
        f"{figures['speedup']:.2f}x faster** than bf16.\n"
    )


def _reproduce_section(record: QuantRecord) -> str:
    return (
        "## Reproduce\n\n"
        f"```bash\nmobq quantize {record.base_model} --scheme {record.scheme} "
        f"--target {record.target} --group-size {record.group_size} --out DIR\n```\n"
    )
