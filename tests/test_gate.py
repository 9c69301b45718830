"""The verify gate still fails real bugs, even where it forgives 8da4w rounding at depth.

Each test lowers a tiny 8da4w Qwen3 with one bug put into the program only (the references
stay right) and runs the stage's verify on it, as `mobq export` would: the bug must fail both
criteria (fidelity to the eager quantized model, and being as close to the float model as that
model is), with a message that says so. The first-layer check (mobq.first_layer), which runs
before the full lowering, must fail a bug in layer 0 and cannot see one in a later layer.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import _tiny, export, export_once
from mobq import convert, first_layer, metadata, quantize, untie, verify
from mobq.errors import VerificationFailed
from mobq.families import family_for_config
from mobq.hfmodel import load_config
from mobq.plan import ExportRequest, plan_export
from mobq.pte import export_program, isolate, llama
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


def _first_layer(stages: dict[str, Path], work: Path) -> first_layer.FirstLayerResult:
    runtime_md = metadata.derive(stages["model"], stages["model"], load_config(stages["model"]))
    return first_layer.check(
        stages["converted"],
        stages["quantized"],
        stages["model"],
        ExportOptions(ctx=CTX),
        runtime_md.pte_constant_methods(),
        prompt_format=runtime_md.prompt_format,
        bos_id=None,
        workdir=work,
    )


@pytest.fixture(scope="module")
def right_first_layer(
    stages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> first_layer.FirstLayerResult:
    return _first_layer(stages, tmp_path_factory.mktemp("first-layer"))


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


def _double_w2_scale(layer: int) -> Callable[[torch.nn.Module], None]:
    def change(model: torch.nn.Module) -> None:
        if layer < len(model.layers):  # the first-layer check's program has layer 0 only
            model.layers[layer].feed_forward.w2.weight.scale.mul_(2.0)

    return change


def test_the_first_layer_of_the_right_program_passes(
    right_first_layer: first_layer.FirstLayerResult, tmp_path: Path
) -> None:
    result = right_first_layer
    assert result.passed and (result.layers, result.steps) == (1, 15)
    # Measured: 129 dB min (1-layer program vs eager, tiny width), top-1 on every step; the
    # gate is far below that and far above a real bug (next test).
    assert result.sqnr_db_min > first_layer.THRESHOLD_DB + 40 and result.top1 == 1.0
    assert result.threshold_db == first_layer.THRESHOLD_DB and result.seconds > 0
    first_layer.require_pass(result, "eager 8da4w model")  # no error
    assert not list(tmp_path.iterdir())  # the cut checkpoints and program are gone


def test_a_wrong_scale_in_a_later_layer_passes_the_first_layer_check_not_the_gate(
    stages: dict[str, Path],
    right_first_layer: first_layer.FirstLayerResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(isolate.ENV_DISABLE, "1")
    _with_model_change(monkeypatch, _double_w2_scale(1))
    # Layer 1 is not in the first-layer program: it is the program without the bug.
    checked = _first_layer(stages, tmp_path)
    assert checked.passed and checked.sqnr_db_min == right_first_layer.sqnr_db_min
    # The whole-program gate is what catches it.
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


@pytest.fixture(scope="module")
def tiny_three_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shallowest model the pipeline runs the first-layer check on (MIN_MODEL_LAYERS)."""
    layers = first_layer.MIN_MODEL_LAYERS
    return _tiny(tmp_path_factory, "qwen3-three-layers", num_hidden_layers=layers)


def test_the_plan_checks_the_first_layer_of_deep_quantized_llama_programs(
    tiny_tied: Path, tiny_three_layers: Path
) -> None:
    def threshold(model: Path, **options: object) -> float | None:
        plan = plan_export(ExportRequest(model=str(model), out=None, ctx=CTX, **options))
        return plan.first_layer_threshold

    assert threshold(tiny_three_layers, scheme="8da4w") == first_layer.THRESHOLD_DB
    assert threshold(tiny_three_layers, scheme="8da8w") == first_layer.THRESHOLD_DB
    assert threshold(tiny_three_layers, scheme="8da4w", min_sqnr_db=12.0) == 12.0
    assert threshold(tiny_three_layers, scheme="8da4w", min_sqnr_db=40.0) == 25.0
    assert threshold(tiny_three_layers, scheme="fp32") is None  # nothing to round differently
    assert threshold(tiny_tied, scheme="8da4w") is None  # 2 layers: the whole gate is as precise


def test_a_wrong_scale_in_layer_0_stops_the_export_before_the_full_lowering(
    tiny_three_layers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(isolate.ENV_DISABLE, "1")
    loaded_layers: list[int] = []
    load = llama.load_eager_model

    def broken(converted_dir: Path, options: ExportOptions) -> torch.nn.Module:
        model = load(converted_dir, options)
        loaded_layers.append(len(model.layers))
        _double_w2_scale(0)(model)
        return model

    monkeypatch.setattr(llama, "load_eager_model", broken)
    out = tmp_path / "out"
    with pytest.raises(VerificationFailed) as failure:
        export(tiny_three_layers, out, scheme="8da4w", use_cache=False)
    message = str(failure.value)
    assert "\n" not in message and message.startswith("layer 0 of the program disagrees")
    found = re.search(r"SQNR ([\d.]+) dB \(min over 15 steps of a 1-layer program\)", message)
    assert found and float(found.group(1)) < first_layer.THRESHOLD_DB - 5  # measured 14.6 dB
    assert f"below the first-layer gate of {first_layer.THRESHOLD_DB:g} dB" in message
    assert message.endswith("stopped before the full lowering, no model.pte was written")
    assert loaded_layers == [1]  # the 3-layer program was never built
    assert not out.exists() and not list(tmp_path.glob("**/*.pte"))


@pytest.mark.slow
def test_the_manifest_records_the_first_layer_check(
    tiny_three_layers: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, manifest = export_once(
        tmp_path_factory, "three-layers-8da4w", tiny_three_layers, scheme="8da4w"
    )
    assert manifest.export.scheme == "8da4w" and manifest.verification["passed"]
    checked = manifest.verification["first_layer"]
    assert checked["passed"] and checked["layers"] == 1 and checked["steps"] == 15
    assert checked["threshold_db"] == first_layer.THRESHOLD_DB
    assert checked["sqnr_db_min"] > first_layer.THRESHOLD_DB + 40 and checked["top1"] == 1.0
    (stage,) = [s for s in manifest.stages if s.name == "export"]
    assert 0 < checked["seconds"] < stage.seconds


@pytest.mark.parametrize(
    ("recipe", "spec"),
    [
        ("qwen3-0.6b", {}),  # q/k norms
        # Phi-4-mini: fused qkv_proj and gate_up_proj (the family's splits), partial rotary
        ("phi-4-mini", {"hidden_size": 128, "head_dim": 32, "tie_word_embeddings": False}),
    ],
    ids=["qwen3", "phi3"],
)
def test_the_cut_checkpoints_are_the_first_layer_of_the_model(
    recipe: str, spec: dict, tmp_path: Path
) -> None:
    from mobq import tinylm
    from mobq.checkpoint import CheckpointReader
    from mobq.hfmodel import load_causal_lm
    from mobq.recipes import get_recipe

    architecture = get_recipe(recipe).architecture
    tiny = tinylm.TinySpec(num_hidden_layers=3, **spec)
    tinylm.build_tiny_model(architecture, tmp_path / "model", spec=tiny)
    untied = untie.untie_checkpoint(tmp_path / "model", tmp_path / "untied").path
    quantize.quantize_checkpoint(untied, tmp_path / "quantized", SCHEMES["8da4w"])
    convert.convert_checkpoint(tmp_path / "quantized", tmp_path / "converted")
    config = load_config(tmp_path / "quantized")
    family = family_for_config(config)
    reference = first_layer.cut_reference(
        tmp_path / "quantized", tmp_path / "cut-ref", family, config
    )
    converted = first_layer.cut_converted(
        tmp_path / "converted", tmp_path / "cut-et", family, config
    )

    # The cut reference is the full model stopped after layer 0 (then its final norm).
    ids = torch.tensor([[5, 17, 42, 7, 99, 3]])
    with torch.no_grad():
        full = load_causal_lm(tmp_path / "quantized")
        after_layer_0 = full.model.norm(full(ids, output_hidden_states=True).hidden_states[1])
        cut = load_causal_lm(reference)
        assert cut.config.num_hidden_layers == 1
        assert torch.equal(cut(ids, output_hidden_states=True).hidden_states[-1], after_layer_0)
    # The cut program's checkpoint holds layer 0 and nothing deeper, as ExecuTorch loads it.
    with CheckpointReader(converted) as reader:
        layers = {name.split(".")[1] for name in reader.names if name.startswith("layers.")}
        assert layers == {"0"} and "output.weight" in reader and "norm.weight" in reader
    assert json.loads((converted / "params.json").read_text())["n_layers"] == 1
    assert len(llama.load_eager_model(converted, ExportOptions(ctx=CTX)).layers) == 1
