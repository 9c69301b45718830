"""mobq: a Hugging Face LLM to a verified ExecuTorch .pte for phones, one stage at a time.

The public API (docs/api.md): `export`, `load`, `bench`, `publish`, `locate` and the `Export`
and `Model` they return. Everything else is a stage module, importable but not promised to stay put.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

from mobq import api

__all__ = ["Export", "Model", "__version__", "bench", "export", "load", "locate", "publish"]

Export = api.Export
Model = api.Model
load = api.load
locate = api.locate
publish = api.publish


class _StageNamedFunction:
    """An API function whose name is also a stage module's: `mobq.export` (mobq/export.py) and
    `mobq.bench` (mobq/bench.py). Importing the module must not replace the function, and
    `from mobq import bench as bench_stage` inside mobq must still reach the module's names:
    this object calls the function and passes every other attribute through to the module."""

    def __init__(self, function: Any, module: str) -> None:
        object.__setattr__(self, "_module", module)
        for name in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__"):
            object.__setattr__(self, name, getattr(function, name))
        object.__setattr__(self, "__wrapped__", function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self._module), name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Monkeypatching a stage function lands on the module, where it is used.
        setattr(importlib.import_module(self._module), name, value)

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        # What `monkeypatch` and `vars()` read and restore: the module's names.
        return vars(importlib.import_module(object.__getattribute__(self, "_module")))

    def __delattr__(self, name: str) -> None:
        delattr(importlib.import_module(self._module), name)

    def __repr__(self) -> str:
        return f"<function mobq.{self.__name__}>"


export = _StageNamedFunction(api.export, "mobq.export")
bench = _StageNamedFunction(api.bench, "mobq.bench")
_KEEP = {"export": export, "bench": bench}


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _KEEP and isinstance(value, types.ModuleType):
            return  # the import system binding the stage module: it stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
