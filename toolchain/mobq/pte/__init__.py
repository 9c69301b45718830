"""Stage `export`: a checkpoint -> an XNNPACK .pte (`model.pte`), through one lowering.

Builders turn a checkpoint into a `Program` (named methods with example inputs, plus the
runner's constant methods); `lowering.lower` turns any program into a .pte. Which builder a
checkpoint needs is the family's `exporter` (or `multimodal`), looked up in `BUILDERS`.

    llama.py       ExecuTorch's llama Transformer + converted weights (custom SDPA, KV cache)
    hf.py          transformers' own decoder + a static KV cache (families llama cannot express)
    multimodal.py  vision_encoder + token_embedding + text_decoder (ExecuTorch's MultimodalRunner)
    static_cache.py  the static-cache calling convention shared by hf and multimodal
    lowering.py    Program -> .pte (pre-lowered linears, one export, one edge lowering)
    linears.py     quantized linears -> XNNPACK delegates, one template per shape
    isolate.py     the whole stage in a child interpreter, so its memory ends with it
    verify_multimodal.py  the multimodal program against eager
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobq.errors import StageError
from mobq.pte import hf, llama, multimodal
from mobq.pte.lowering import ExportOptions, ExportResult, Program, lower

Builder = Callable[[Path, ExportOptions, dict[str, Any]], Program]

BUILDERS: dict[str, Builder] = {
    "llama": llama.build,
    "hf": hf.build,
    "multimodal": multimodal.build,
}

__all__ = ["BUILDERS", "ExportOptions", "ExportResult", "export_program"]


def export_program(
    exporter: str,
    model_dir: Path,
    pte: Path,
    options: ExportOptions,
    runtime_methods: dict[str, Any],
) -> ExportResult:
    """Build `exporter`'s program from `model_dir` and lower it to `pte` (in this process)."""
    if exporter not in BUILDERS:
        raise StageError(f"unknown exporter '{exporter}'; known: {', '.join(BUILDERS)}")
    program = BUILDERS[exporter](Path(model_dir), options, runtime_methods)
    return lower(program, Path(pte), options)
