"""The iOS app's build settings and its ExecuTorch-facing layer, checked without Xcode (no Swift
compiler here): project.yml and the entitlements hold what Xcode and ExecuTorch's prebuilt
frameworks need, and Engine.swift is the one file that calls ExecuTorchLLM, with every call
listed in docs/apps.md."""

from __future__ import annotations

import plistlib
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
IOS = ROOT / "ios_app"
# Xcode's "Swift Language Version" choices; anything else fails the build.
SWIFT_LANGUAGE_MODES = {"4.0", "4.2", "5.0", "6.0"}
# ExecuTorch's SwiftPM products an LLM app on XNNPACK links (executorch-facts.md, Apps).
EXECUTORCH_PRODUCTS = {
    "executorch_llm",
    "backend_xnnpack",
    "kernels_llm",
    "kernels_optimized",
    "kernels_quantized",
}


def _target() -> dict[str, Any]:
    spec = yaml.safe_load((IOS / "project.yml").read_text())
    return spec["targets"]["MobqApp"]


def _pinned_executorch() -> str:
    # Python 3.10 has no tomllib; the pin is one quoted requirement.
    (version,) = re.findall(r'"executorch==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    return version


def test_swift_version_is_a_language_mode_xcode_accepts() -> None:
    version = _target()["settings"]["base"]["SWIFT_VERSION"]
    assert isinstance(version, str), "quote it: YAML reads 5.0 as a number"
    assert version in SWIFT_LANGUAGE_MODES


def test_kernels_and_backends_are_force_loaded() -> None:
    # They register from static initialisers; without -all_load the linker drops them.
    assert "-all_load" in _target()["settings"]["base"]["OTHER_LDFLAGS"]


def test_entitlements_ask_for_the_increased_memory_limit() -> None:
    path = IOS / _target()["settings"]["base"]["CODE_SIGN_ENTITLEMENTS"]
    entitlements = plistlib.loads(path.read_bytes())
    assert entitlements.get("com.apple.developer.kernel.increased-memory-limit") is True


def test_executorch_swiftpm_products_and_version() -> None:
    spec = yaml.safe_load((IOS / "project.yml").read_text())
    package = spec["packages"]["ExecuTorch"]
    version = _pinned_executorch()
    assert package["url"] == "https://github.com/pytorch/executorch"
    assert package["branch"] == f"swiftpm-{version}"  # the same runtime the exports are made for
    linked = {d["product"] for d in _target()["dependencies"] if d.get("package") == "ExecuTorch"}
    assert linked == EXECUTORCH_PRODUCTS
    assert _target()["info"]["properties"]["MobqExecuTorchVersion"] == version


def _swift_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in (IOS / "MobqApp").glob("*.swift")}


def test_only_engine_swift_calls_executorch() -> None:
    callers = sorted(
        name
        for name, text in _swift_sources().items()
        if re.search(r"\bimport ExecuTorchLLM\b|\bTextRunner\b|\bConfig\s*\{", text)
    )
    assert callers == ["Engine.swift"]


def test_engine_turns_echo_off() -> None:
    # GenerationConfig.echo defaults to true (irunner.h): the prompt would reach the callback.
    # The ObjC property is `echoEnabled` with getter `isEchoEnabled`; Swift imports a BOOL
    # property under its `is` getter's name (as UIView's `hidden` is `isHidden`).
    assert "$0.isEchoEnabled = false" in _swift_sources()["Engine.swift"]


def test_every_executorch_call_in_engine_swift_is_listed_in_the_docs() -> None:
    engine = _swift_sources()["Engine.swift"]
    calls = set(re.findall(r"\brunner\.(\w+)\(", engine))
    settings = set(re.findall(r"\$0\.(\w+)\s*=", engine))
    assert calls >= {"load", "generate", "reset", "stop"}, calls
    assert "TextRunner(modelPath:" in engine
    docs = (ROOT / "docs/apps.md").read_text()
    section = docs[docs.index("## ExecuTorch calls") :]
    for name in sorted(calls | settings | {"specialTokens"}):
        in_code = re.search(rf"`[^`]*\b{name}\b[^`]*`", section)
        assert in_code, f"docs/apps.md does not list {name}, which Engine.swift uses"
    assert "ExecuTorchLLMTextRunner.h" in section and "ExecuTorchLLMConfig.h" in section
