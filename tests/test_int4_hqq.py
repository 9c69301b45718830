"""The server scheme int4-hqq: the card's torchao config, a checkpoint transformers loads, bench-gpu."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import shared_tokenizer
from mobq import quantize
from mobq.cli import cli
from mobq.errors import InputError, ResourceError
from mobq.schemes import SCHEMES, QuantOptions, auto_server_target, check_scheme_name
from mobq.server import gpu_bench, int4_gpu, modelcard

TOKENS = torch.arange(3, 40).unsqueeze(0)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the host without CUDA")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *args])
    return result.exit_code, result.output


def one_line_error(code: int, output: str, expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in output, output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], output


def sqnr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = (reference - other).pow(2).mean()
    return float(10 * torch.log10(reference.pow(2).mean() / noise))


@pytest.fixture(scope="module")
def int4_cpu(
    tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory
) -> quantize.QuantizeResult:
    out = tmp_path_factory.mktemp("int4") / "int4-hqq"
    options = QuantOptions(group_size=32, target="cpu")
    return quantize.quantize_checkpoint(
        tiny_untied, out, SCHEMES["int4-hqq"], options, source_id="Qwen/Qwen3-8B"
    )


def _logits(model_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(TOKENS).logits


def _in_memory(model_dir: Path, algorithm: str) -> torch.Tensor:
    """torchao's quantize_ on the whole float model: what the streamed checkpoint must equal."""
    from torchao.quantization import IntxWeightOnlyConfig, PerGroup, quantize_
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    config = IntxWeightOnlyConfig(
        weight_dtype=torch.int4, granularity=PerGroup(32), intx_choose_qparams_algorithm=algorithm
    )
    quantize_(model, config)
    with torch.no_grad():
        return model(TOKENS).logits


def test_checkpoint_loads_in_transformers_with_logits_close_to_the_original(
    int4_cpu: quantize.QuantizeResult, tiny_untied: Path
) -> None:
    from torchao.quantization import IntxUnpackedToInt8Tensor
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(int4_cpu.path), dtype=torch.float32)
    q_proj = loaded.model.layers[0].self_attn.q_proj.weight
    assert isinstance(q_proj, IntxUnpackedToInt8Tensor)
    assert q_proj.target_dtype == torch.int4 and tuple(q_proj.block_size) == (1, 32)
    assert isinstance(loaded.lm_head.weight, IntxUnpackedToInt8Tensor)
    # Embeddings stay float: torchao's quantized embedding dequantizes the whole table per call.
    assert not isinstance(loaded.model.embed_tokens.weight, IntxUnpackedToInt8Tensor)

    original, quantized = _logits(tiny_untied), _logits(int4_cpu.path)
    assert torch.equal(quantized, _in_memory(tiny_untied, "hqq_scale_only"))
    assert sqnr_db(original, quantized) > 13.0
    # HQQ's point: closer to the original than round-to-nearest with the same groups.
    assert sqnr_db(original, quantized) > sqnr_db(original, _in_memory(tiny_untied, "affine"))
    assert (original.argmax(-1) == quantized.argmax(-1)).float().mean() > 0.7


def test_checkpoint_carries_tokenizer_record_and_card(int4_cpu: quantize.QuantizeResult) -> None:
    path = int4_cpu.path
    assert (path / "tokenizer.json").is_file() and (path / "generation_config.json").is_file()
    assert int4_cpu.plan_summary == {"embedding:none": 1, "linear:int4-hqq": 15}
    assert int4_cpu.server_target == "cpu"
    record = json.loads((path / modelcard.RECORD_FILE).read_text())
    assert record["scheme"] == "int4-hqq" and record["group_size"] == 32
    assert record["torchao_config"]["_type"] == "IntxWeightOnlyConfig"
    assert record["versions"]["torchao"] == "0.18.0"
    card = (path / "README.md").read_text()
    assert "base_model:\n- Qwen/Qwen3-8B" in card
    assert "| group size | 32 |" in card and "CPU fallback" in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    assert "vllm serve" not in card  # the CPU fallback has no GPU kernels to serve with
    assert "No figures measured yet" in card


def test_gpu_targets_use_the_cards_torchao_config() -> None:
    from torchao.core.config import config_from_dict, config_to_dict
    from torchao.quantization import Int4WeightOnlyConfig, IntxWeightOnlyConfig, PerGroup

    from mobq.schemes import MODULE_SCHEMES

    scheme = MODULE_SCHEMES["int4-hqq"]
    for target in ("h100", "a100"):
        config = scheme.torchao_config(QuantOptions(group_size=128, target=target))
        assert isinstance(config, Int4WeightOnlyConfig)
        assert config.group_size == 128
        assert config.int4_packing_format == "tile_packed_to_4d"
        assert config.int4_choose_qparams_algorithm == "hqq"
        assert config_from_dict(config_to_dict(config)) == config
        assert scheme.placement(QuantOptions(target=target)) == ("cuda", "bfloat16")
    fallback = scheme.torchao_config(QuantOptions(group_size=128, target="cpu"))
    assert isinstance(fallback, IntxWeightOnlyConfig)
    assert fallback.weight_dtype == torch.int4 and fallback.granularity == PerGroup(128)
    assert SCHEMES["int4-hqq"].default_group_size == 128


def test_auto_target_follows_the_hosts_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_server_target() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, target in (((9, 0), "h100"), ((8, 6), "a100"), ((7, 5), "cpu")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *_, c=capability: c)
        assert auto_server_target() == target


@no_cuda
def test_gpu_target_without_cuda_is_refused_before_writing(
    tiny_untied: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="needs CUDA"):
        quantize.quantize_checkpoint(
            tiny_untied, tmp_path / "q", SCHEMES["int4-hqq"], QuantOptions(128, target="h100")
        )
    assert not (tmp_path / "q").exists()


def test_unknown_target_is_refused() -> None:
    with pytest.raises(InputError, match="choose one of: h100, a100, cpu"):
        QuantOptions(target="tpu")


def test_export_refuses_the_server_scheme(tiny_untied: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not an ExecuTorch \.pte"):
        check_scheme_name("int4-hqq")
    assert check_scheme_name("int4-hqq", target=None).target == "server"
    code, output = invoke(
        "export", str(tiny_untied), "--scheme", "int4-hqq", "--out", str(tmp_path / "x")
    )
    one_line_error(code, output, "mobq quantize MODEL --scheme int4-hqq")
    assert not (tmp_path / "x").exists()


def test_quantize_cli_defaults_to_groups_of_128(tiny_untied: Path, tmp_path: Path) -> None:
    out = tmp_path / "q128"
    code, output = invoke(
        "quantize",
        str(tiny_untied),
        "--scheme",
        "int4-hqq",
        "--target",
        "cpu",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, output
    result = json.loads(output)
    assert result["group_size"] == 128 and result["server_target"] == "cpu"
    # Only o_proj and down_proj (in_features 128) fit groups of 128 in the tiny model.
    assert result["modules"]["linear:int4-hqq"] == 4
    assert all("not divisible by group size 128" in why for why in result["skipped"].values())
    assert "| group size | 128 |" in (out / "README.md").read_text()


@no_cuda
def test_bench_gpu_without_cuda_is_one_line(int4_cpu: quantize.QuantizeResult) -> None:
    code, output = invoke("bench-gpu", str(int4_cpu.path))
    one_line_error(code, output, "bench-gpu needs a CUDA GPU")
    code, output = invoke("bench-gpu", "qwen3-8b", "--random-weights")
    one_line_error(code, output, "bench-gpu needs a CUDA GPU")


@pytest.mark.parametrize("which", ["synthetic", "qwen3"])
def test_chat_prompt_has_exactly_the_asked_length(tiny_untied: Path, which: str) -> None:
    from transformers import AutoTokenizer

    directory = tiny_untied if which == "synthetic" else shared_tokenizer("qwen3")
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    ids = gpu_bench.chat_prompt_ids(tokenizer, 256)
    text = tokenizer.decode(ids)
    assert len(ids) == 256
    assert text.startswith("<|im_start|>user") and text.rstrip().endswith("<|im_start|>assistant")
    with pytest.raises(InputError, match="shorter than the chat template"):
        gpu_bench.chat_prompt_ids(tokenizer, 3)


def _measured(peak: float, latency: float) -> dict[str, float]:
    return {
        "model": "m",
        "peak_reserved_gb": peak,
        "peak_allocated_gb": peak - 0.5,
        "generate_peak_allocated_gb": peak - 0.8,
        "weights_gb": peak - 1,
        "latency_s": latency,
        "tokens_per_s": 256 / latency,
    }


def test_figures_compare_with_bf16_and_reach_the_card(int4_cpu: quantize.QuantizeResult) -> None:
    settings = gpu_bench.BenchSettings()
    result = gpu_bench.compare("NVIDIA H200", settings, _measured(6.0, 5.0), _measured(16.0, 10.0))
    assert result["memory_reduction"] == pytest.approx(0.625)
    assert result["speedup"] == pytest.approx(2.0)
    assert gpu_bench.compare("g", settings, _measured(6.0, 5.0), None)["speedup"] is None
    modelcard.save_figures(int4_cpu.path, result)
    card = (int4_cpu.path / "README.md").read_text()
    assert "On NVIDIA H200" in card
    assert "| peak GPU memory reserved, load + generate (GB) | 16.00 | 6.00 |" in card
    assert "| peak GPU memory allocated, generate only (GB) | 15.20 | 5.20 |" in card
    assert "torch.compile (reduce-overhead)" in card and "after 2 warm-ups" in card
    assert "**62% less peak memory, 2.00x faster**" in card
    assert "max_memory_reserved" in result["method"]["peak_reserved_gb"]


def test_card_renders_figures_saved_before_the_phase_fields(
    int4_cpu: quantize.QuantizeResult,
) -> None:
    old = {k: v for k, v in _measured(6.0, 5.0).items() if k != "generate_peak_allocated_gb"}
    result = gpu_bench.compare("g", gpu_bench.BenchSettings(), old, _measured(16.0, 10.0))
    modelcard.save_figures(int4_cpu.path, result)
    card = (int4_cpu.path / "README.md").read_text()
    assert "| peak GPU memory allocated, generate only" not in card
    assert "| latency, batch 1 (s) | 10.00 | 5.00 |" in card


def test_generate_uses_a_static_cache_and_the_chosen_compile_mode() -> None:
    class Tokenizer:
        pad_token_id = None
        eos_token_id = 7

    settings = gpu_bench.BenchSettings(compile_mode="max-autotune-no-cudagraphs")
    kwargs = gpu_bench._generate_kwargs(settings, Tokenizer())
    assert kwargs["cache_implementation"] == "static" and kwargs["pad_token_id"] == 7
    assert kwargs["compile_config"].mode == "max-autotune-no-cudagraphs"
    assert kwargs["min_new_tokens"] == kwargs["max_new_tokens"] == 256
    eager = gpu_bench._generate_kwargs(gpu_bench.BenchSettings(compile=False), Tokenizer())
    assert eager["disable_compile"] and "compile_config" not in eager
    with pytest.raises(InputError, match="unknown compile mode 'fast'"):
        gpu_bench.BenchSettings(compile_mode="fast")


def test_figures_need_a_mobq_checkpoint(tiny_untied: Path) -> None:
    with pytest.raises(InputError, match="mobq quantize"):
        modelcard.save_figures(tiny_untied, {})


def test_child_process_output_is_parsed_or_reported() -> None:
    good = f"noise\n{gpu_bench.RESULT_PREFIX}{json.dumps({'latency_s': 1.5})}\n"
    assert gpu_bench.parse_child_output(0, good, "")["latency_s"] == 1.5
    with pytest.raises(
        ResourceError, match=r"exit 1\): torch.OutOfMemoryError: CUDA out of memory"
    ):
        gpu_bench.parse_child_output(
            1, "", "Traceback...\ntorch.OutOfMemoryError: CUDA out of memory\n"
        )


@pytest.mark.parametrize("field", ["prompt_tokens", "new_tokens", "runs"])
def test_bench_settings_must_be_positive(field: str) -> None:
    with pytest.raises(InputError, match=field.replace("_", "-")):
        gpu_bench.BenchSettings(**{field: 0})


@no_cuda
def test_each_model_is_measured_in_a_child_interpreter(int4_cpu: quantize.QuantizeResult) -> None:
    # The real child runs (`python -m mobq.server.gpu_bench`) and its failure returns as one line.
    with pytest.raises(ResourceError, match=r"benchmark process failed \(exit 1\): \w+"):
        gpu_bench.measure_isolated(int4_cpu.path, gpu_bench.BenchSettings())


def test_models_load_on_the_cpu_before_moving_to_the_gpu(
    int4_cpu: quantize.QuantizeResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading straight onto CUDA held a 2.9 GB transient for an 8B int4 checkpoint (H200).
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained
    seen: list[object] = []
    moved: list[object] = []

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("device_map", "cpu"))
        model = real(*args, **kwargs)
        to = model.to
        monkeypatch.setattr(model, "to", lambda device: moved.append(device) or to(device))
        return model

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    model, tokenizer = gpu_bench._load(str(int4_cpu.path), device="cpu")
    assert seen == ["cpu"] and moved == ["cpu"]
    # The quantized weights survive the move as torchao tensors (the CPU target's class here).
    assert any(not kind.startswith("Tensor:") for kind in gpu_bench._weight_types(model))
    assert tokenizer.eos_token_id is not None


def test_decoder_choice_is_checked() -> None:
    with pytest.raises(InputError, match="unknown decoder 'beam'"):
        gpu_bench.BenchSettings(decoder="beam")
    with pytest.raises(InputError, match="unknown int4 kernel 'marlin'"):
        gpu_bench.BenchSettings(decoder="loop", int4_kernel="marlin")
    with pytest.raises(InputError, match="drop --no-compile"):
        gpu_bench.BenchSettings(decoder="loop", compile=False)


def test_a_model_without_tinygemm_int4_has_nothing_to_swap(tiny_untied: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_untied))
    assert int4_gpu.use_plain_int4_linears(model) == 0


@pytest.mark.slow
def test_loop_makes_the_same_greedy_tokens_as_generate(tiny_untied: Path) -> None:
    """mobq's loop (one static cache, compiled step) vs transformers' eager generate.

    On the CPU the step compiles with inductor's C++ backend ("default": no CUDA graphs); two
    runs over the one reset cache must repeat the tokens.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_untied)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_untied))
    settings = gpu_bench.BenchSettings(
        prompt_tokens=24, new_tokens=6, runs=1, warmup=1, decoder="loop", compile_mode="default"
    )
    prefill: list[float] = []
    tokens: list[int] = []
    seconds = gpu_bench._timed_loop(model, tokenizer, settings, prefill, tokens)
    assert len(seconds) == len(prefill) == 2 and all(
        0 < p < s for p, s in zip(prefill, seconds, strict=True)
    )
    ids = torch.tensor([gpu_bench.chat_prompt_ids(tokenizer, 24)])
    expected = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=6,
        min_new_tokens=6,
        do_sample=False,
        disable_compile=True,
    )
    assert tokens == expected[0, 24:].tolist()
