"""The whole pipeline on tiny Qwen3 models: verified programs that run in the stock runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import export
from mobq import fsutil, plan, runtime
from mobq.errors import VerificationFailed
from mobq.manifest import load_manifest
from mobq.plan import ExportRequest
from mobq.run import generate

pytestmark = pytest.mark.slow


def test_fp32_export_agrees_with_transformers(export_tied_fp32) -> None:
    _, manifest = export_tied_fp32
    verification = manifest.verification
    assert verification["reference"] == "transformers fp32 model"
    assert verification["sqnr_db_min"] > 35 and verification["passed"]
    assert verification["top1_agreement"] == 1.0
    assert manifest.quantization is None


def test_8da4w_export_agrees_with_its_eager_quantized_model(
    export_tied_8da4w, export_untied_8da4w
) -> None:
    for _, manifest in (export_tied_8da4w, export_untied_8da4w):
        verification = manifest.verification
        assert verification["reference"].startswith("eager 8da4w model")
        assert verification["sqnr_db_min"] >= 20 and verification["passed"]
        assert manifest.quantization["modules"] == {"embedding:int8-weight": 1, "linear:8da4w": 15}


def test_quantized_program_is_smaller_and_really_quantized(
    export_tied_8da4w, export_tied_fp32, tiny_tied
) -> None:
    """Against the float model the 8da4w program must differ: proof the weights are int4."""
    from mobq import verify

    out_q, manifest_q = export_tied_8da4w
    _, manifest_f = export_tied_fp32
    assert manifest_q.file("program").bytes < manifest_f.file("program").bytes / 2
    method = runtime.load_program(out_q / "model.pte").load_method("forward")
    reference = verify.load_reference(tiny_tied)
    ids = list(range(10, 40))
    got = verify.pte_step_logits(method, ids[:28], ids[28:])
    expected = verify.reference_logits(reference, ids)
    assert verify.sqnr_db(expected[27], got[0]) < 30


def test_untie_happened_only_for_the_tied_model(export_tied_8da4w, export_untied_8da4w) -> None:
    untie_tied = next(s for s in export_tied_8da4w[1].stages if s.name == "untie")
    untie_untied = next(s for s in export_untied_8da4w[1].stages if s.name == "untie")
    assert untie_tied.detail["was_tied"] and not untie_untied.detail["was_tied"]


def test_manifest_files_hashes_and_program_metadata(export_tied_8da4w) -> None:
    out, manifest = export_tied_8da4w
    assert load_manifest(out) == manifest
    for entry in manifest.files:
        assert (out / entry.path).stat().st_size == entry.bytes
        assert fsutil.sha256_file(out / entry.path) == entry.sha256
    methods = runtime.read_constant_methods(runtime.load_program(out / "model.pte"))
    assert methods["get_eos_ids"] == manifest.runtime.eos_ids
    assert "get_bos_id" not in methods  # Qwen3 has no bos token
    assert methods["get_max_context_len"] == manifest.export.ctx == 96
    assert methods["get_max_seq_len"] == manifest.runtime.max_seq_len
    assert methods["get_vocab_size"] == manifest.runtime.vocab_size
    assert methods["use_sdpa_with_kv_cache"] and methods["use_kv_cache"]
    assert manifest.versions["executorch"] == "1.5.1" and manifest.host["cpu"]
    assert [s.name for s in manifest.stages] == ["untie", "quantize", "convert", "export"]


def test_program_runs_in_textllmrunner_with_the_chat_template(export_tied_8da4w) -> None:
    out, manifest = export_tied_8da4w
    assert manifest.verification["runner_tokens"] > 0
    streamed: list[str] = []
    result = generate(out, "Hello there", max_new_tokens=6, on_token=streamed.append)
    assert "".join(streamed) == result.text and 0 < result.tokens <= 6
    assert result.stats["prompt_tokens"] > 3  # the chat template wrapped the message


def test_rerun_reuses_every_stage(export_tied_8da4w, tiny_tied: Path, tmp_path: Path) -> None:
    _, manifest = export(tiny_tied, tmp_path / "again", scheme="8da4w")
    assert all(stage.cached for stage in manifest.stages)
    assert manifest.file("program").sha256 == export_tied_8da4w[1].file("program").sha256


def test_a_program_lowered_by_other_code_is_not_reused(
    export_tied_8da4w, tiny_tied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = ExportRequest(model=str(tiny_tied), out=None, scheme="8da4w", ctx=96)
    keys = plan.stage_keys(plan.plan_export(request))
    monkeypatch.setattr(plan, "lowering_digest", lambda: "another-lowering")
    other = plan.stage_keys(plan.plan_export(request))
    assert other["export"] != keys["export"]
    assert {k: v for k, v in other.items() if k != "export"} == {
        k: v for k, v in keys.items() if k != "export"
    }


def test_the_lowering_digest_follows_the_sources_and_only_them(tmp_path: Path) -> None:
    (tmp_path / "lowering.py").write_text("PASSES = 1\n")
    before = plan.source_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("not code")
    assert plan.source_digest(tmp_path) == before
    (tmp_path / "lowering.py").write_text("PASSES = 2\n")
    assert plan.source_digest(tmp_path) != before


def test_failed_verification_leaves_no_program(
    tiny_tied: Path, tmp_path: Path, export_tied_8da4w
) -> None:
    out = tmp_path / "rejected"
    with pytest.raises(VerificationFailed, match="below the 1000 dB gate"):
        export(tiny_tied, out, scheme="8da4w", min_sqnr_db=1000.0)
    assert not out.exists()
    assert not list(tmp_path.glob("**/model.pte"))


def test_existing_output_needs_force(export_tied_fp32, tiny_tied: Path) -> None:
    from mobq.errors import OutputExists

    out, _ = export_tied_fp32
    with pytest.raises(OutputExists, match="--force"):
        export(tiny_tied, out, scheme="fp32")
    _, manifest = export(tiny_tied, out, scheme="fp32", force=True)
    assert json.loads((out / "manifest.json").read_text())["export"]["scheme"] == "fp32"
    assert manifest.verification["passed"]


def test_real_qwen3_tokenizer_export_carries_the_right_ids(
    tiny_qwen3_real_tokenizer: Path, tmp_path: Path
) -> None:
    out, manifest = export(tiny_qwen3_real_tokenizer, tmp_path / "realtok", scheme="8da4w", ctx=64)
    methods = runtime.read_constant_methods(runtime.load_program(out / "model.pte"))
    assert methods["get_eos_ids"] == [
        151645,
        151643,
    ]  # <|im_end|>, <|endoftext|>; not Phi's 199999/200020
    assert "get_bos_id" not in methods
    assert manifest.runtime.chat_format.assistant_prefix == "<|im_start|>assistant\n"
    result = generate(out, "Hi", max_new_tokens=4, think=False)
    # The runner's tokenizer sees exactly the ids transformers' chat template produces.
    from mobq.metadata import load_auto_tokenizer

    hf = load_auto_tokenizer(tiny_qwen3_real_tokenizer)
    ids = hf.apply_chat_template(
        [{"role": "user", "content": "Hi"}],
        add_generation_prompt=True,
        enable_thinking=False,
        tokenize=True,
    )
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert result.stats["prompt_tokens"] == len(ids) == 13
