"""The verify gate still fails real bugs, even where it forgives 8da4w rounding at depth.

Each test lowers a tiny 8da4w Qwen3 with one bug put into the program only (the references
stay right) and runs the stage's verify on it, as `mobq export` would: the bug must fail both
criteria (fidelity to the eager quantized model, and being as close to the float model as that
model is), with a message that says so.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mobq import convert, metadata, quantize, untie, verify
from mobq.errors import VerificationFailed
from mobq.hfmodel import load_config
from mobq.pte import export_program, llama
from mobq.pte.lowering import ExportOptions
from mobq.schemes import SCHEMES

CTX = 64


@pytest.fixture(scope="module")
def stages(tiny_tied: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("gate")
    untie.untie_checkpoint(tiny_tied, work / "untied")
    quantize.quantize_checkpoint(work / "untied", work / "quantized", SCHEMES["8da4w"])
    convert.convert_checkpoint(work / "quantized", work / "converted")
    return {
        "model": tiny_tied,
        **{name: work / name for name in ("untied", "quantized", "converted")},
    }


def _verified(
    stages: dict[str, Path], converted: Path, pte: Path, threshold_db: float = 20.0
) -> verify.VerifyResult:
    runtime_md = metadata.derive(stages["model"], stages["model"], load_config(stages["model"]))
    options = ExportOptions(ctx=CTX)
    if not pte.is_file():
        export_program("llama", converted, pte, options, runtime_md.pte_constant_methods())
    return verify.run(
        pte,
        stages["quantized"],
        stages["model"],
        reference_name="eager 8da4w model",
        threshold_db=threshold_db,
        prompt_format=runtime_md.prompt_format,
        bos_id=None,
        max_prefill=CTX - 1,
        ctx=CTX,
        float_dir=stages["untied"],
    )


def _with_model_change(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[torch.nn.Module], None]
) -> None:
    """The llama builder loads the converted weights, then `change` breaks the model."""
    load = llama.load_eager_model

    def broken(converted_dir: Path, options: ExportOptions) -> torch.nn.Module:
        model = load(converted_dir, options)
        change(model)
        return model

    monkeypatch.setattr(llama, "load_eager_model", broken)


def _fails_with_a_clear_line(result: verify.VerifyResult) -> None:
    assert not result.passed
    with pytest.raises(VerificationFailed) as failure:
        verify.require_pass(result)
    message = str(failure.value)
    assert "\n" not in message and "below the 20 dB gate" in message
    assert "not like the eager quantized model either" in message


def test_the_right_program_passes(stages: dict[str, Path], tmp_path: Path) -> None:
    pte = tmp_path / "model.pte"
    result = _verified(stages, stages["converted"], pte)
    assert result.passed, result.gate
    assert result.sqnr_db_min >= 20.0
    assert result.float_comparison is None  # the plain gate passed: no float model needed
    # Above its plain gate, the like-with-like comparison with the float model passes it too.
    strict = _verified(stages, stages["converted"], pte, threshold_db=200.0)
    f = strict.float_comparison
    assert strict.passed and f is not None and f.failures(strict.sqnr_db_min) == []


def test_a_wrong_scale_in_one_layer_fails(
    stages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def double_one_scale(model: torch.nn.Module) -> None:
        weight = model.layers[1].feed_forward.w2.weight
        weight.scale.mul_(2.0)

    _with_model_change(monkeypatch, double_one_scale)
    _fails_with_a_clear_line(_verified(stages, stages["converted"], tmp_path / "model.pte"))


def test_two_swapped_layers_fail(
    stages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap_first_two(model: torch.nn.Module) -> None:
        first, second = model.layers[0], model.layers[1]
        model.layers[0], model.layers[1] = second, first

    _with_model_change(monkeypatch, swap_first_two)
    _fails_with_a_clear_line(_verified(stages, stages["converted"], tmp_path / "model.pte"))


def test_a_wrong_rope_base_fails(stages: dict[str, Path], tmp_path: Path) -> None:
    converted = tmp_path / "converted"
    shutil.copytree(stages["converted"], converted)
    params_file = converted / "params.json"
    params = json.loads(params_file.read_text())
    params["rope_theta"] = params["rope_theta"] / 100
    params_file.write_text(json.dumps(params))
    _fails_with_a_clear_line(_verified(stages, converted, tmp_path / "model.pte"))


def _float_figures(quantized: float, program: float, top1: tuple[float, float] = (1.0, 1.0)):
    return verify.FloatComparison("float", quantized, program, top1[0], top1[1])


def test_deep_rounding_noise_passes_only_far_below_the_quantization_noise() -> None:
    # Random-weight Qwen3-4B, ctx 1024 (docs/performance.md): 19.0 dB from the eager 8da4w
    # model, which is itself 2.1 dB from float; the program is exactly as far from float.
    deep = _float_figures(2.06, 2.06, (0.0667, 0.0667))
    assert verify.judge(18.97, 20.0, deep)[0]
    # The same figures against float, but the program only 8 dB from the eager model: a bug.
    assert not verify.judge(8.0, 20.0, deep)[0]
    # Quantization noise of 15.4 dB (the tiny model): 16.7 dB from eager is not far below it.
    passed, why = verify.judge(16.7, 20.0, _float_figures(15.4, 13.8))
    assert not passed and "not 10 dB above" in why and "further from the float model" in why
    # Fewer top-1 matches with float than the eager model has.
    assert not verify.judge(35.0, 40.0, _float_figures(15.0, 15.0, (0.9, 0.6)))[0]
    # No float reference (an fp32 program): the threshold alone decides.
    assert verify.judge(21.0, 20.0, None)[0] and not verify.judge(19.0, 20.0, None)[0]
