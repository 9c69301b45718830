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


@dataclass(frozen=True)
class QuantOptions:
    group_size: int = 32
    hqq: bool = False

    def __post_init__(self) -> None:
        if self.group_size <= 0:
            raise InputError(f"--group-size must be a positive integer, got {self.group_size}")


@dataclass(frozen=True)
class ModuleScheme:
    name: str
    description: str
    kinds: frozenset[str]

    def torchao_config(self, options: QuantOptions) -> Any:
        return _CONFIG_BUILDERS[self.name](options)

    def group_size(self, options: QuantOptions) -> int | None:
        """The input-dim group this scheme needs (None: per channel, no divisibility rule)."""
        return options.group_size if self.name == "8da4w" else None


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    linear: str | None
    embedding: str | None
    # Verification gate: logit SQNR of the .pte against its reference eager model.
    min_sqnr_db: float
    target: Literal["pte", "server"] = "pte"

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


_CONFIG_BUILDERS = {
    "8da4w": _int8_dyn_int4,
    "8da8w": _int8_dyn_int8,
    "int8-weight": _int8_weight_only,
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
}


def check_scheme_name(name: str) -> Scheme:
    if name not in SCHEMES:
        raise InputError(f"unknown scheme '{name}'; choose one of: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def check_module_scheme_name(name: str) -> ModuleScheme:
    if name not in MODULE_SCHEMES:
        raise InputError(
            f"unknown module scheme '{name}'; choose one of: {', '.join(MODULE_SCHEMES)}"
        )
    return MODULE_SCHEMES[name]
