"""`make demo`: the whole job on an embedded default, offline.

Builds a tiny Qwen3-architecture model (bundled tokenizer, a short training run on the
bundled corpus so its output reads like text), exports it with the phone recipe (8da4w),
verifies it, generates through ExecuTorch's stock runner, and benchmarks it on this host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mobq import cache, progress, tinylm
from mobq.pipeline import ExportRequest, export_model
from mobq.recipes import get_recipe

DEMO_RECIPE = "qwen3-0.6b"
DEMO_SPEC = tinylm.TinySpec(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
)
DEMO_TRAIN_STEPS = 300
DEMO_CTX = 256
DEMO_PROMPT = "Why is the sky blue?"


@dataclass
class DemoResult:
    model_dir: Path
    export_dir: Path


def demo_model() -> Path:
    """The trained tiny model, built once and cached."""
    recipe = get_recipe(DEMO_RECIPE)
    key = cache.stage_key(
        "demo-model", arch=recipe.architecture, spec=DEMO_SPEC.__dict__, steps=DEMO_TRAIN_STEPS, v=2
    )
    directory = cache.cache_root() / "demo" / f"qwen3-tiny-{key[:12]}"
    if (directory / "config.json").is_file():
        progress.info(f"[dim]demo model: reusing {directory}[/]")
        return directory
    with progress.stage(
        "demo-model",
        f"tiny {recipe.architecture['architectures'][0]} trained on the bundled corpus",
    ):
        tinylm.build_tiny_model(
            recipe.architecture, directory, spec=DEMO_SPEC, train_steps=DEMO_TRAIN_STEPS
        )
    return directory


def export_demo(out: Path) -> Path:
    model_dir = demo_model()
    request = ExportRequest(model=str(model_dir), out=out, scheme="8da4w", ctx=DEMO_CTX, force=True)
    export_dir, _ = export_model(request)
    return export_dir
