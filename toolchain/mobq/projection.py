"""Phone projection: does an export fit each phone class, and what decode speed to expect.

A PROJECTION, not a measurement. Decoding one token reads every weight once (the embedding
table excepted: one row of it) plus the KV cache so far, so on a phone it is bound by memory
bandwidth:

    projected tok/s = memory bandwidth x efficiency / bytes read per token

The bandwidth is the class's LPDDR peak (data/phone_classes.yaml); the efficiency factor is
derived from published phone figures listed in the same file (the geometric mean of what each
implies), never written in the code. docs/apps.md states the method and its limits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from mobq.bundle import MB, RUNTIME_ALLOWANCE_BYTES, TARGETS, PhoneClass, phone_classes
from mobq.errors import InputError
from mobq.manifest import Manifest

KV_BYTES_PER_VALUE = 4  # mobq exports keep the KV cache in fp32 (as bench.py's ceiling)
# Bytes per parameter of a phone scheme: linears (group scales in bf16, as XNNPACK stores
# them) and the embedding table (int8 per row for the quantized schemes).
SCHEME_BYTES: dict[str, tuple[Any, float]] = {
    "8da4w": (lambda group: 0.5 + 2 / group, 1.0),
    "8da8w": (lambda group: 1.0, 1.0),
    "fp32": (lambda group: 4.0, 4.0),
}
LABEL = "projection, not a measurement (docs/apps.md)"


@dataclass(frozen=True)
class ModelShape:
    """What a projection needs of a model: its program, its embedding table, its KV cache."""

    name: str
    program_bytes: int
    embedding_bytes: int  # inside the program; a token reads one row of it
    kv_bytes_per_position: int
    ctx: int
    estimated: bool  # program size estimated from the architecture, no export yet

    def bytes_per_token(self, position: int) -> int:
        return self.program_bytes - self.embedding_bytes + self.kv_bytes_per_position * position

    def memory_bytes(self) -> int:
        """Program + the KV cache at the full context + the runtime allowance (as `bundle`)."""
        return self.program_bytes + self.kv_bytes_per_position * self.ctx + RUNTIME_ALLOWANCE_BYTES

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ModelShape:
        from mobq.benchmark import embedding_bytes
        from mobq.bundle import memory_need

        need = memory_need(manifest)
        return cls(
            name=manifest.model.name,
            program_bytes=need.program_bytes,
            embedding_bytes=embedding_bytes(manifest),
            kv_bytes_per_position=need.kv_cache_bytes // manifest.runtime.max_context_len,
            ctx=manifest.runtime.max_context_len,
            estimated=False,
        )

    @classmethod
    def from_architecture(
        cls, name: str, architecture: dict[str, Any], scheme: str, group_size: int, ctx: int
    ) -> ModelShape:
        """An estimate from a recipe's config.json fields: every linear (lm_head untied, as
        mobq exports it) at the scheme's bytes per weight, the embedding table at its own."""
        if scheme not in SCHEME_BYTES:
            raise InputError(
                f"no phone projection for scheme '{scheme}'; choose one of {sorted(SCHEME_BYTES)}"
            )
        arch = {**architecture, **(architecture.get("text_config") or {})}
        hidden, layers = int(arch["hidden_size"]), int(arch["num_hidden_layers"])
        heads = int(arch["num_attention_heads"])
        kv_heads = int(arch.get("num_key_value_heads") or heads)
        head_dim = int(arch.get("head_dim") or hidden // heads)
        vocab = int(arch["vocab_size"])
        attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
        mlp = 3 * hidden * int(arch["intermediate_size"])
        linears = layers * (attention + mlp) + vocab * hidden  # + lm_head
        linear_bytes, embedding_per_param = SCHEME_BYTES[scheme]
        embedding = int(vocab * hidden * embedding_per_param)
        return cls(
            name=name,
            program_bytes=int(linears * linear_bytes(group_size)) + embedding,
            embedding_bytes=embedding,
            kv_bytes_per_position=2 * layers * kv_heads * head_dim * KV_BYTES_PER_VALUE,
            ctx=ctx,
            estimated=True,
        )


@dataclass(frozen=True)
class Projection:
    phone: str
    example: str
    budget_mb: float
    need_mb: float
    fits: bool
    memory_bandwidth_gb_s: float
    efficiency: float
    decode_tokens_per_sec: float  # at the start of a reply (a short context)
    decode_tokens_per_sec_full_ctx: float  # with the KV cache full
    estimated_size: bool
    label: str = LABEL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decode_rate(shape: ModelShape, phone: PhoneClass, position: int, efficiency: float) -> float:
    return phone.memory_bandwidth_gb_s * 1e9 * efficiency / shape.bytes_per_token(position)


@lru_cache(maxsize=1)
def _calibration_rows() -> tuple[dict[str, Any], ...]:
    text = resources.files("mobq").joinpath("data/phone_classes.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text).get("calibration") or ())


def calibration_shape(row: dict[str, Any]) -> ModelShape:
    from mobq.recipes import get_recipe

    recipe = get_recipe(row["recipe"])
    return ModelShape.from_architecture(
        recipe.name, recipe.architecture, row["scheme"], row["group_size"], row["ctx"]
    )


def implied_efficiency(row: dict[str, Any]) -> float:
    """measured / (bandwidth / bytes per token) for one published figure (short context)."""
    phone = find_phone(row["phone"])
    ceiling = decode_rate(calibration_shape(row), phone, position=0, efficiency=1.0)
    return row["decode_tokens_per_sec"] / ceiling


def efficiency(rows: tuple[dict[str, Any], ...] | None = None) -> float:
    """The geometric mean of what each calibration figure implies."""
    rows = _calibration_rows() if rows is None else rows
    if not rows:
        raise InputError("data/phone_classes.yaml lists no calibration figures")
    values = [implied_efficiency(row) for row in rows]
    return math.exp(sum(math.log(v) for v in values) / len(values))


def find_phone(name: str) -> PhoneClass:
    for target in TARGETS:
        for phone in phone_classes()[target]:
            if phone.name == name:
                return phone
    names = ", ".join(p.name for t in TARGETS for p in phone_classes()[t])
    raise InputError(f"unknown phone class '{name}'; choose one of: {names}")


def project(shape: ModelShape, phone: PhoneClass, factor: float | None = None) -> Projection:
    factor = efficiency() if factor is None else factor
    need = shape.memory_bytes()
    budget = phone.budget_bytes
    return Projection(
        phone=phone.name,
        example=phone.example,
        budget_mb=round(budget / MB, 1),
        need_mb=round(need / MB, 1),
        fits=need <= budget,
        memory_bandwidth_gb_s=phone.memory_bandwidth_gb_s,
        efficiency=round(factor, 3),
        decode_tokens_per_sec=round(decode_rate(shape, phone, 0, factor), 1),
        decode_tokens_per_sec_full_ctx=round(decode_rate(shape, phone, shape.ctx, factor), 1),
        estimated_size=shape.estimated,
    )


def project_all(shape: ModelShape, phones: list[PhoneClass] | None = None) -> list[Projection]:
    factor = efficiency()
    classes = phones if phones is not None else [p for t in TARGETS for p in phone_classes()[t]]
    return [project(shape, phone, factor) for phone in classes]
