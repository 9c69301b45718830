"""The model card (README.md) of a published .pte export, rendered from its manifest.

Front matter through huggingface_hub's `ModelCardData` (base_model, library and pipeline
tags); the body states only what the manifest and the bench results record: the verification
figures, the runtime metadata the apps read, measured speeds, and how to run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mobq.manifest import Manifest

BENCH_FILE = "bench.json"


def render(manifest: Manifest, repo_id: str, bench: Sequence[dict[str, Any]] = ()) -> str:
    """The README.md text for `repo_id`."""
    from huggingface_hub import ModelCard, ModelCardData

    source = manifest.model.source
    base = source.get("hub_id")
    data = ModelCardData(
        base_model=base if base and source.get("kind") != "random" else None,
        library_name="executorch",
        pipeline_tag="text-generation",
        tags=["executorch", "xnnpack", manifest.export.scheme, "mobq", "on-device"],
    )
    body = "\n".join(
        part
        for part in (
            _title(manifest, base),
            _verification(manifest),
            _runtime(manifest),
            _bench(bench),
            _usage(manifest, repo_id),
        )
        if part
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}").content


def _title(manifest: Manifest, base: str | None) -> str:
    export = manifest.export
    program = manifest.file("program")
    origin = f"`{base}`" if base else f"`{manifest.model.name}`"
    if manifest.model.source.get("kind") == "random":
        origin += " architecture with **random weights** (for benchmarking; it generates noise)"
    return (
        f"# {manifest.model.name} {export.scheme} ExecuTorch (XNNPACK), context {export.ctx}\n\n"
        f"{origin} exported with mobq {manifest.mobq_version} to an ExecuTorch program for "
        f"phones: `{program.path}` ({program.bytes / 1e6:.1f} MB), scheme {export.scheme}"
        f" (group size {export.group_size}), KV cache of {export.ctx} tokens, prefill chunks of "
        f"up to {export.max_seq_len}.\n"
    )


def _verification(manifest: Manifest) -> str:
    v = manifest.verification
    if not v:
        return ""
    return (
        "## Verification\n\n"
        f"Before it was written, the program ran in the ExecuTorch runtime on {v.get('prompts')} "
        f"prompts ({v.get('steps')} prefill and decode steps) and its logits were compared with "
        f"the {v.get('reference')}:\n\n"
        "| | |\n| --- | --- |\n"
        f"| SQNR min / mean | {v.get('sqnr_db_min', 0):.1f} / {v.get('sqnr_db_mean', 0):.1f} dB |\n"
        f"| gate | {v.get('threshold_db', 0):.1f} dB |\n"
        f"| top-1 agreement | {v.get('top1_agreement', 0):.0%} |\n"
        f"| passed | {'yes' if v.get('passed') else 'no'} |\n"
    )


def _runtime(manifest: Manifest) -> str:
    rt = manifest.runtime
    files = "\n".join(
        f"| `{f.path}` | {f.role} | {f.bytes / 1e6:.2f} MB | `{f.sha256[:16]}…` |"
        for f in manifest.files
    )
    return (
        "## Files\n\n"
        "| file | role | size | sha256 |\n| --- | --- | --- | --- |\n"
        f"{files}\n\n"
        f"`manifest.json` records the full sha256 of each (mobq checks them after download), "
        f"the eos ids {rt.eos_ids}, bos {rt.bos_id}, the chat format and the versions used "
        f"({', '.join(f'{k} {v}' for k, v in manifest.versions.items() if k in ('executorch', 'torch', 'torchao'))}).\n"
    )


def _bench(results: Sequence[dict[str, Any]]) -> str:
    if not results:
        return ""
    rows = "\n".join(
        f"| {r['device']} | {r['threads']} | {r['prompt_tokens']} | {r['generated_tokens']} | "
        f"{r['ttft_ms']:.0f} | {r['prefill_tokens_per_sec']:.1f} | {r['decode_tokens_per_sec']:.1f} | "
        f"{r['peak_rss_mb']:.0f} |"
        for r in results
    )
    return (
        "## Measured\n\n"
        "`mobq bench` (ExecuTorch's stock TextLLMRunner, median of repetitions):\n\n"
        "| device | threads | prompt | generated | TTFT ms | prefill tok/s | decode tok/s | peak RSS MB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"{rows}\n"
    )


def _usage(manifest: Manifest, repo_id: str) -> str:
    return (
        "## Run it\n\n"
        "With mobq (`pip install mobq`), which downloads through the Hugging Face cache and checks "
        "every file against the manifest first:\n\n"
        "```bash\n"
        f'mobq run {repo_id} --prompt "Why is the sky blue?"\n'
        f"mobq chat {repo_id}\n"
        f"mobq bench {repo_id} -p 128 -n 64\n"
        f"mobq bundle android {repo_id}    # or ios: copies it into mobq's sample app\n"
        "```\n\n"
        "```python\n"
        "import mobq\n\n"
        f'model = mobq.load("{repo_id}")\n'
        'print(model.generate("Why is the sky blue?", max_new_tokens=64))\n'
        "```\n\n"
        "In an app: ExecuTorch's `TextLLMRunner` (`LlmModule` on Android, `TextRunner` on iOS) "
        f"with `{manifest.file('program').path}` and `{manifest.file('tokenizer').path}`; read "
        "the eos ids and context length from `manifest.json`.\n"
    )
