"""Llama-3.x and Phi-4-mini through the same verified export (Gemma-3: test_gemma3.py).

Tiny random-weight models are built from each recipe's real config.json snapshot with the
family's quirks kept: llama3 rope scaling (tied), Phi-3's fused qkv_proj / gate_up_proj,
partial rotary and LongRoPE (untied, like Phi-3-mini). Each family costs one fp32 and one
8da4w export, session-scoped.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from conftest import export, shared_tokenizer
from mobq import convert, metadata, runtime, tinylm, untie
from mobq.checkpoint import CheckpointReader
from mobq.errors import CheckpointError, InputError, UnsupportedModel
from mobq.families import FAMILIES, family_for_config
from mobq.hfmodel import load_config
from mobq.pte.llama import load_eager_model, model_args
from mobq.pte.lowering import ExportOptions
from mobq.recipes import all_recipes, get_recipe
from mobq.verify import sqnr_db

CTX = 96
LLAMA_SPEC = tinylm.TinySpec(
    hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16
)
# Phi-3 derives rope sizes from hidden_size / heads: keep head_dim consistent with them.
PHI_SPEC = tinylm.TinySpec(
    hidden_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    tie_word_embeddings=False,
)


def llama_architecture() -> dict[str, Any]:
    """Llama-3.2-1B's config with its llama3 rope scaling moved into the toy context.

    The real switch point is 8192 tokens; at 64 the blend band and the divided low
    frequencies fall inside a 96-token test, so a wrong scaling cannot hide.
    """
    arch = dict(get_recipe("llama-3.2-1b").architecture)
    arch["rope_scaling"] = {**arch["rope_scaling"], "original_max_position_embeddings": 64}
    return arch


def phi_architecture() -> dict[str, Any]:
    """Phi-4-mini's config; its short_factor is all ones, so use the long factors for both."""
    arch = dict(get_recipe("phi-4-mini").architecture)
    scaling = dict(arch["rope_scaling"])
    scaling["short_factor"] = list(scaling["long_factor"])
    arch["rope_scaling"] = scaling
    return arch


def _build(tmp_path_factory: pytest.TempPathFactory, name: str, arch: dict, spec) -> Path:
    out = tmp_path_factory.mktemp("family-models") / name
    return tinylm.build_tiny_model(arch, out, spec=spec)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory, "llama", llama_architecture(), LLAMA_SPEC)


@pytest.fixture(scope="module")
def tiny_phi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory, "phi", phi_architecture(), PHI_SPEC)


@pytest.fixture(scope="module")
def exports(tiny_llama: Path, tiny_phi: Path, tmp_path_factory: pytest.TempPathFactory):
    """(family, scheme) -> (out dir, manifest), built lazily: only the cases a test asks for."""
    models = {"llama": tiny_llama, "phi3": tiny_phi}
    done: dict[tuple[str, str], Any] = {}

    def get(family: str, scheme: str):
        if (family, scheme) not in done:
            out = tmp_path_factory.mktemp("family-exports") / f"{family}-{scheme}"
            done[family, scheme] = export(models[family], out, scheme=scheme, ctx=CTX)
        return done[family, scheme]

    return get


# --- registry, recipes, refusals ------------------------------------------------------


def test_recipes_of_every_family_are_listed() -> None:
    from click.testing import CliRunner

    from mobq.cli import cli

    names = set(all_recipes())
    wanted = {"phi-4-mini", "gemma-3-1b", "gemma-3-4b", "llama-3.2-1b", "llama-3.2-3b"}
    assert wanted <= names and {n for n in names if n.startswith("qwen3-")}
    result = CliRunner().invoke(cli, ["--quiet", "models", "--json"])
    assert result.exit_code == 0, result.output
    listed = {row["name"]: row["family"] for row in json.loads(result.output)}
    assert {listed[n] for n in wanted} == {"phi3", "gemma3", "llama"}


def test_recipe_snapshots_build_configs_of_their_own_family() -> None:
    from transformers import AutoConfig

    for recipe in all_recipes().values():
        config = AutoConfig.for_model(**recipe.architecture)
        family = next(f for f in FAMILIES.values() if config.architectures[0] in f.architectures)
        assert family.name == recipe.family


def test_unsupported_architecture_lists_the_supported_ones() -> None:
    with pytest.raises(UnsupportedModel) as info:
        family_for_config(SimpleNamespace(architectures=["MambaForCausalLM"], model_type="mamba"))
    for arch in ("LlamaForCausalLM", "Phi3ForCausalLM", "Qwen3ForCausalLM"):
        assert arch in str(info.value)


def test_unsupported_rope_kind_is_refused_up_front() -> None:
    from transformers import AutoConfig

    arch = dict(get_recipe("llama-3.2-1b").architecture)
    arch["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
    with pytest.raises(UnsupportedModel, match=r"rope_type 'dynamic'.*default, llama3"):
        family_for_config(AutoConfig.for_model(**arch))


def test_longrope_context_past_its_switch_point_is_refused() -> None:
    from transformers import AutoConfig

    config = AutoConfig.for_model(**get_recipe("phi-4-mini").architecture)
    params = convert.derive_params(config, family_for_config(config))
    model_args(params, ExportOptions(ctx=4096))
    with pytest.raises(InputError, match=r"--ctx 4097 exceeds .* 4096"):
        model_args(params, ExportOptions(ctx=4097))


# --- rope: ExecuTorch's tables equal transformers' -------------------------------------


def _rope_tables(model_dir: Path) -> tuple[torch.Tensor, ...]:
    """cos/sin of transformers' rotary embedding and of ExecuTorch's Rope, positions 0..CTX."""
    from executorch.examples.models.llama.rope import Rope
    from transformers import AutoModelForCausalLM

    config = load_config(model_dir)
    params = convert.derive_params(config, family_for_config(config))
    rope = Rope(model_args(params, ExportOptions(ctx=CTX)))
    with torch.device("meta"):
        hf_model = AutoModelForCausalLM.from_config(config)
    rotary = type(hf_model.model.rotary_emb)(config)  # on the CPU, with real buffers
    positions = torch.arange(CTX)[None]
    cos, sin = rotary(torch.zeros(1, dtype=torch.float32), positions)
    return cos[0], sin[0], rope.freqs_cos, rope.freqs_sin


@pytest.mark.parametrize("which", ["llama", "phi"])
def test_scaled_rope_tables_equal_transformers(
    which: str, tiny_llama: Path, tiny_phi: Path
) -> None:
    model = {"llama": tiny_llama, "phi": tiny_phi}[which]
    hf_cos, hf_sin, et_cos, et_sin = _rope_tables(model)
    assert hf_cos.shape == et_cos.shape  # Phi: 0.75 of head_dim 32 -> 24 rotary dims
    assert torch.allclose(hf_cos, et_cos, atol=1e-5) and torch.allclose(hf_sin, et_sin, atol=1e-5)


def test_rope_scaling_really_changes_the_tables(tiny_llama: Path, tiny_phi: Path) -> None:
    """Guard against a vacuous pass: the scaled tables differ from plain rope."""
    config = load_config(tiny_llama)
    params = convert.derive_params(config, family_for_config(config))
    divisors = params["rope_scaling_short_factor"]
    assert divisors[0] == 1.0 and divisors[-1] == 32.0 and any(1 < d < 32 for d in divisors)
    phi = convert.derive_params(load_config(tiny_phi), FAMILIES["phi3"])
    assert phi["partial_rotary_factor"] == 0.75
    assert 1.15 < phi["rope_scaling_attention_factor"] < 1.2  # sqrt(1 + ln 32 / ln 4096)
    assert max(phi["rope_scaling_short_factor"]) > 40  # resampled real long factors


# --- convert: fused tensors split exactly --------------------------------------------


@pytest.fixture(scope="module")
def converted_phi(tiny_phi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert.convert_checkpoint(tiny_phi, tmp_path_factory.mktemp("conv") / "phi").path


def test_phi3_key_map_and_splits_cover_the_checkpoint_exactly(tiny_phi: Path) -> None:
    config = load_config(tiny_phi)
    family = family_for_config(config)
    params = convert.derive_params(config, family)
    covered = set(convert.key_map(config, family)) | set(convert.split_map(config, family, params))
    with CheckpointReader(tiny_phi) as reader:
        assert set(reader.names) == covered
        assert "model.layers.1.self_attn.qkv_proj.weight" in reader.names


def test_phi3_fused_projections_become_executorch_tensors(
    tiny_phi: Path, converted_phi: Path
) -> None:
    model = load_eager_model(converted_phi, ExportOptions(ctx=32))
    with CheckpointReader(converted_phi) as out, CheckpointReader(tiny_phi) as src:
        assert set(out.names) == {name for name, _ in model.named_parameters()}
        qkv = src.get("model.layers.0.self_attn.qkv_proj.weight")
        q_rows = PHI_SPEC.num_attention_heads * PHI_SPEC.head_dim
        kv_rows = PHI_SPEC.num_key_value_heads * PHI_SPEC.head_dim
        assert torch.equal(out.get("layers.0.attention.wq.weight"), qkv[:q_rows])
        assert torch.equal(out.get("layers.0.attention.wv.weight"), qkv[q_rows + kv_rows :])
        gate_up = src.get("model.layers.1.mlp.gate_up_proj.weight")
        half = PHI_SPEC.intermediate_size
        assert torch.equal(out.get("layers.1.feed_forward.w1.weight"), gate_up[:half])
        assert torch.equal(out.get("layers.1.feed_forward.w3.weight"), gate_up[half:])


def test_fused_tensor_of_the_wrong_size_is_named() -> None:
    blocks = [convert.RowBlock("a", 0, 4), convert.RowBlock("b", 4, 6)]
    with pytest.raises(
        CheckpointError, match=r"qkv has 5 rows but config.json implies 6 \(4 \+ 2\)"
    ):
        convert.cut_rows("qkv", torch.zeros(5, 3), blocks)


@torch.no_grad()
def _eager_sqnr(model_dir: Path, converted: Path) -> float:
    """Prefill past position 64 (the toy llama3 switch point), then decode through the cache."""
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    et_model = load_eager_model(converted, ExportOptions(ctx=CTX))
    tokens = torch.randint(0, 1000, (1, 90), generator=torch.Generator().manual_seed(0))
    expected = reference(tokens).logits[0]
    results = [sqnr_db(expected[79], et_model(tokens[:, :80], {"input_pos": torch.tensor([0])}))]
    for pos in range(80, 90):
        step = et_model(tokens[:, pos : pos + 1], {"input_pos": torch.tensor([pos])})
        results.append(sqnr_db(expected[pos], step))
    return min(results)


def test_eager_models_match_transformers(
    tiny_llama: Path, tiny_phi: Path, converted_phi: Path, tmp_path: Path
) -> None:
    untied = untie.untie_checkpoint(tiny_llama, tmp_path / "untied").path
    converted_llama = convert.convert_checkpoint(untied, tmp_path / "converted").path
    assert _eager_sqnr(tiny_llama, converted_llama) > 100
    assert _eager_sqnr(tiny_phi, converted_phi) > 100


# --- metadata from each family's real tokenizer files ---------------------------------

PHI4_ADDED = {200019: "<|assistant|>", 200020: "<|end|>", 200021: "<|user|>", 200022: "<|system|>"}
PHI4_TOKENIZER_CONFIG = {
    "tokenizer_class": "GPT2Tokenizer",
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "add_bos_token": False,
    "add_eos_token": False,
    # Phi-4-mini-instruct's template without its tool branch.
    "chat_template": (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] "
        "+ '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}"
        "{% else %}{{ eos_token }}{% endif %}"
    ),
}
# generation_config.json of each instruct checkpoint: the stop tokens the chat model uses.
GENERATION = {
    "llama": {"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]},
    "phi3": {"bos_token_id": 199999, "eos_token_id": [200020, 199999], "pad_token_id": 199999},
    "gemma3": {"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0},
}


def phi4_tokenizer(out: Path) -> Path:
    return tinylm.extend_tokenizer(
        shared_tokenizer("o200k"), out, PHI4_ADDED, PHI4_TOKENIZER_CONFIG
    )


def _model_dir(tmp_path: Path, family: str, tokenizer: Path) -> Path:
    (tmp_path / "generation_config.json").write_text(json.dumps(GENERATION[family]))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if tokenizer != tmp_path:
            (tmp_path / name).write_bytes((tokenizer / name).read_bytes())
    return tmp_path


@pytest.mark.parametrize(
    ("family", "recipe", "eos", "bos", "add_bos"),
    [
        ("llama", "llama-3.2-1b", [128001, 128008, 128009], 128000, True),
        ("phi3", "phi-4-mini", [200020, 199999], 199999, False),
        ("gemma3", "gemma-3-4b", [1, 106], 2, True),
    ],
)
def test_runtime_ids_come_from_the_real_tokenizer_files(
    family: str, recipe: str, eos: list[int], bos: int, add_bos: bool, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    if family == "phi3":
        tokenizer = phi4_tokenizer(tmp_path)
    else:
        tokenizer = shared_tokenizer({"llama": "llama3_1", "gemma3": "gemma3"}[family])
    model_dir = _model_dir(tmp_path, family, tokenizer)
    config = AutoConfig.for_model(**get_recipe(recipe).architecture)
    md = metadata.derive(model_dir, model_dir, config)
    assert md.eos_ids == eos and md.bos_id == bos and md.add_bos == add_bos
    assert md.pte_constant_methods() == {"get_eos_ids": eos, "get_bos_id": bos}
    fmt = md.prompt_format
    assert fmt is not None
    turns = [("user", "Hi 🙂"), ("assistant", "Hello."), ("user", "def f():\n\treturn 1")]
    template = metadata.load_auto_tokenizer(model_dir)
    messages = [{"role": role, "content": text} for role, text in turns]
    expected = metadata.render_chat(template, messages, add_generation_prompt=True)
    assert fmt.render(turns) == expected


# --- the verified export, per family --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_fp32_export_agrees_with_transformers_and_runs(exports, family: str) -> None:
    out, manifest = exports(family, "fp32")
    verification = manifest.verification
    assert verification["reference"] == "transformers fp32 model"
    assert verification["sqnr_db_min"] > 35 and verification["passed"]
    assert verification["top1_agreement"] == 1.0
    assert verification["runner_tokens"] > 0  # ExecuTorch's stock TextLLMRunner generated
    assert manifest.model.family == family
    methods = runtime.read_constant_methods(runtime.load_program(out / "model.pte"))
    assert methods["get_eos_ids"] == manifest.runtime.eos_ids
    assert methods["get_max_context_len"] == CTX


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_8da4w_export_agrees_with_its_eager_quantized_model(exports, family: str) -> None:
    _, manifest = exports(family, "8da4w")
    verification = manifest.verification
    assert verification["reference"].startswith("eager 8da4w model")
    assert verification["sqnr_db_min"] >= 20 and verification["passed"]
    assert verification["runner_tokens"] > 0
    # Phi-3: 2 fused linears per layer quantized as one each, split after quantization.
    linears = {"llama": 2 * 7 + 1, "phi3": 2 * 4 + 1}[family]
    assert manifest.quantization["modules"] == {
        "embedding:int8-weight": 1,
        "linear:8da4w": linears,
    }
