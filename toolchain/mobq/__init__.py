"""mobq: a Hugging Face LLM to a verified ExecuTorch .pte for phones, one stage at a time.

The public API (docs/api.md): `export`, `load`, `bench`, `publish`, `locate` and the `Export`
and `Model` they return. Everything else is a stage module (`mobq.pipeline`, `mobq.pte`,
`mobq.benchmark`, ...), importable but not promised to stay put.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mobq.api import Export, Model, bench, export, load, locate, publish

__all__ = ["Export", "Model", "__version__", "bench", "export", "load", "locate", "publish"]
