"""Quantization schemes: a short name to the exact torchao configs the model cards use.

Importing this module is cheap; torchao is imported only when a config is built.
A *scheme* is a whole-model preset (what linears and embeddings get); a *module scheme* is
what one module gets, and is what recipe/CLI overrides name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mobq.errors import InputError

ModuleKind = Literal["linear", "embedding"]
# Int4 group size when nothing else says (recipes.RecipeDefaults holds the other defaults).
DEFAULT_GROUP_SIZE = 32


@dataclass(frozen=True)
class ServerTarget:
    """Where an int4-hqq checkpoint will run: that decides torchao's int4 packing format."""

    name: str
    description: str
    device: str  # weights are quantized where they will run: tinygemm packing is device-specific
    packing: str | None  # Int4WeightOnlyConfig int4_packing_format; None: the CPU fallback
    dtype: str  # the dtype weights are quantized from and the model runs in


SERVER_TARGETS: dict[str, ServerTarget] = {
    # torchao 0.18 accepts HQQ qparams only with tile_packed_to_4d (tinygemm, sm80+), and its
    # "plain" format needs the mslk kernels and symmetric rows: H100 uses tinygemm too.
    "h100": ServerTarget(
        "h100", "Hopper (sm90): tinygemm int4 kernels", "cuda", "tile_packed_to_4d", "bfloat16"
    ),
    "a100": ServerTarget(
        "a100", "Ampere (sm80): tinygemm int4 kernels", "cuda", "tile_packed_to_4d", "bfloat16"
    ),
    # No torchao 0.18 Int4WeightOnlyConfig format runs on CPU; the same int4 groups with HQQ
    # (scale-only) qparams as an IntxWeightOnlyConfig checkpoint load and run anywhere.
    "cpu": ServerTarget(
        "cpu", "any host: int4 groups, dequantized on the fly (testing)", "cpu", None, "float32"
    ),
}


def auto_server_target() -> str:
    """The target of this host: its CUDA GPU when it has one, else the CPU fallback."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    major, _ = torch.cuda.get_device_capability()
    if major >= 9:
        return "h100"
    return "a100" if major == 8 else "cpu"


@dataclass(frozen=True)
class QuantOptions:
    group_size: int = DEFAULT_GROUP_SIZE
    hqq: bool = False
    target: str | None = None  # server target of int4-hqq; None: this host's (auto)

    def __post_init__(self) -> None:
        if self.group_size <= 0:
            raise InputError(f"--group-size must be a positive integer, got {self.group_size}")
        if self.target is not None and self.target not in SERVER_TARGETS:
            raise InputError(
                f"unknown --target '{self.target}'; choose one of: {', '.join(SERVER_TARGETS)}"
            )

    def server_target(self) -> ServerTarget:
        return SERVER_TARGETS[self.target or auto_server_target()]


@dataclass(frozen=True)
class ModuleScheme:
    name: str
    description: str
    kinds: frozenset[str]

    def torchao_config(self, options: QuantOptions) -> Any:
        return _CONFIG_BUILDERS[self.name](options)

    def group_size(self, options: QuantOptions) -> int | None:
        """The input-dim group this scheme needs (None: per channel, no divisibility rule)."""
        return options.group_size if self.name in ("8da4w", "int4-hqq") else None

    def placement(self, options: QuantOptions) -> tuple[str, str]:
        """(device, dtype) a weight is quantized on: tinygemm packs bf16 on the GPU it runs on."""
        if self.name == "int4-hqq":
            target = options.server_target()
            return target.device, target.dtype
        return "cpu", "float32"


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    linear: str | None
    embedding: str | None
    # Verification gate: logit SQNR of the .pte against its reference eager model.
    min_sqnr_db: float
    target: Literal["pte", "server"] = "pte"
    default_group_size: int = DEFAULT_GROUP_SIZE

    @property
    def quantized(self) -> bool:
        return self.linear is not None or self.embedding is not None


def _int8_dyn_int4(options: QuantOptions) -> Any:
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerGroup

    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4,
        weight_granularity=PerGroup(options.group_size),
        weight_scale_dtype=torch.bfloat16,
        intx_choose_qparams_algorithm="hqq_scale_only" if options.hqq else "affine",
    )


def _int8_dyn_int8(options: QuantOptions) -> Any:
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, PerAxis

    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int8,
        weight_granularity=PerAxis(0),
        intx_choose_qparams_algorithm="hqq_scale_only" if options.hqq else "affine",
    )


def _int8_weight_only(options: QuantOptions) -> Any:
    import torch
    from torchao.quantization import IntxWeightOnlyConfig, PerAxis

    return IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))


def _int4_hqq(options: QuantOptions) -> Any:
    """The Qwen3-8B INT4 card's config on GPUs; int4 HQQ groups as intx on the CPU fallback."""
    target = options.server_target()
    if target.packing is None:
        import torch
        from torchao.quantization import IntxWeightOnlyConfig, PerGroup

        return IntxWeightOnlyConfig(
            weight_dtype=torch.int4,
            granularity=PerGroup(options.group_size),
            intx_choose_qparams_algorithm="hqq_scale_only",
        )
    from torchao.quantization import Int4WeightOnlyConfig

    return Int4WeightOnlyConfig(
        group_size=options.group_size,
        int4_packing_format=target.packing,
        int4_choose_qparams_algorithm="hqq",
    )


_CONFIG_BUILDERS = {
    "8da4w": _int8_dyn_int4,
    "8da8w": _int8_dyn_int8,
    "int8-weight": _int8_weight_only,
    "int4-hqq": _int4_hqq,
    "none": lambda options: None,
}

MODULE_SCHEMES: dict[str, ModuleScheme] = {
    "8da4w": ModuleScheme(
        "8da4w", "int8 dynamic activations, int4 weights in groups", frozenset({"linear"})
    ),
    "8da8w": ModuleScheme(
        "8da8w", "int8 dynamic activations, int8 per-channel weights", frozenset({"linear"})
    ),
    "int8-weight": ModuleScheme(
        "int8-weight",
        "int8 per-channel weights, float activations",
        frozenset({"embedding", "linear"}),
    ),
    "int4-hqq": ModuleScheme(
        "int4-hqq",
        "int4 weight-only groups with HQQ qparams, bf16 activations (GPU servers)",
        frozenset({"linear"}),
    ),
    "none": ModuleScheme("none", "kept in float", frozenset({"linear", "embedding"})),
}

SCHEMES: dict[str, Scheme] = {
    "fp32": Scheme("fp32", "no quantization (debugging and correctness)", None, None, 35.0),
    "8da4w": Scheme(
        "8da4w",
        "int8 dynamic activations + int4 grouped weights, int8 per-channel embeddings",
        "8da4w",
        "int8-weight",
        20.0,
    ),
    "8da8w": Scheme(
        "8da8w",
        "int8 dynamic activations + int8 per-channel weights, int8 embeddings",
        "8da8w",
        "int8-weight",
        25.0,
    ),
    # The Qwen3-8B INT4 server card: every linear (lm_head too) int4 in groups of 128, HQQ.
    # Embeddings stay bf16: torchao's quantized embedding dequantizes the whole table per call.
    "int4-hqq": Scheme(
        "int4-hqq",
        "int4 weight-only HQQ groups of 128 for GPU serving (transformers, vLLM); not a .pte",
        "int4-hqq",
        None,
        20.0,
        target="server",
        default_group_size=128,
    ),
}


def check_scheme_name(name: str, target: Literal["pte", "server"] | None = "pte") -> Scheme:
    """The scheme called `name`, refused when it is not for `target` (None: any target)."""
    names = [n for n, s in SCHEMES.items() if target is None or s.target == target]
    scheme = SCHEMES.get(name)
    if scheme is not None and target == "pte" and scheme.target == "server":
        raise InputError(
            f"scheme '{name}' is for GPU servers (transformers, vLLM), not an ExecuTorch .pte; "
            f"run `mobq quantize MODEL --scheme {name} --out DIR`, or export with one of: "
            f"{', '.join(names)}"
        )
    if scheme is None or name not in names:
        raise InputError(f"unknown scheme '{name}'; choose one of: {', '.join(names)}")
    return scheme


def check_module_scheme_name(name: str) -> ModuleScheme:
    if name not in MODULE_SCHEMES:
        raise InputError(
            f"unknown module scheme '{name}'; choose one of: {', '.join(MODULE_SCHEMES)}"
        )
    return MODULE_SCHEMES[name]
