"""The benchmark result contract shared by `mobq bench` and the iOS/Android apps.

One JSON object per measured configuration (model x prompt length x generation length x
threads). The JSON Schema in docs/schema/bench-result.schema.json is generated from this
model (`python -m mobq.results > docs/schema/bench-result.schema.json`) and a test keeps
them identical; the apps' tests validate their output against the same golden files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobq.errors import InputError

RESULT_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Spread(_Strict):
    """min / median / max over the measured repetitions."""

    min: float
    median: float
    max: float


class Ceiling(_Strict):
    """The physical decode limit: memory bandwidth / bytes read per generated token."""

    memory_bandwidth_gb_s: float = Field(gt=0)
    bytes_per_token: int = Field(gt=0)
    decode_tokens_per_sec_limit: float = Field(gt=0)
    fraction_of_limit: float = Field(ge=0)
    method: str = Field(description="how the bandwidth was measured")


class SustainedSample(_Strict):
    t_s: float = Field(ge=0, description="seconds since the sustained run started")
    tokens_per_sec: float = Field(ge=0)
    thermal: str | None = Field(
        default=None, description="nominal | fair | serious | critical | ..."
    )
    thermal_headroom: float | None = None
    rss_mb: float | None = None


class Sustained(_Strict):
    duration_s: float = Field(gt=0)
    interval_s: float = Field(gt=0)
    samples: list[SustainedSample]


class BenchResult(_Strict):
    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    source: Literal["host", "android", "ios"]
    created_at: str
    model: str
    scheme: str
    ctx: int = Field(gt=0)
    model_size_mb: float = Field(gt=0)
    device: str = Field(description="device model (phone) or CPU model (host)")
    os: str
    runtime: dict[str, str] = Field(description="runtime versions: executorch, mobq, app, ...")
    threads: int | None = Field(default=None, ge=1)
    prompt_tokens: int = Field(ge=1)
    generated_tokens: int = Field(ge=0)
    warmup: int = Field(ge=0)
    repetitions: int = Field(ge=1)
    load_ms: float = Field(ge=0)
    ttft_ms: float = Field(ge=0)
    prefill_tokens_per_sec: float = Field(ge=0)
    decode_tokens_per_sec: float = Field(ge=0)
    peak_rss_mb: float = Field(ge=0)
    spread: dict[str, Spread] = Field(
        default_factory=dict, description="per metric, over repetitions"
    )
    ceiling: Ceiling | None = None
    sustained: Sustained | None = None
    manifest_sha256: str | None = Field(
        default=None, description="sha256 of the export's model.pte"
    )
    notes: dict[str, Any] = Field(default_factory=dict)


def result_json_schema() -> dict[str, Any]:
    schema = BenchResult.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mobq.dev/schema/bench-result.schema.json"
    return schema


def load_results(path: Path) -> list[BenchResult]:
    """A result file holds one result object or a list of them; errors name file and field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"no such result file: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    results = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(
                f"{path}: entry {index} is a {type(item).__name__}, expected a result object"
            )
        try:
            results.append(BenchResult.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            prefix = f"entry {index} " if isinstance(raw, list) else ""
            raise InputError(f"{path}: {prefix}field '{where}': {first['msg']}") from exc
    return results


if __name__ == "__main__":
    print(json.dumps(result_json_schema(), indent=2))
