"""The Android app's engine layer against ExecuTorch's 1.5 API: `make android-core-test` compiles
Engine.kt against API stubs (android_app/executorch-stubs); here deliberate mismatches must fail
that same compile, each at its own line, and nothing else in the app may call ExecuTorch."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "android_app/app/src/main/kotlin/dev/mobq/app"
BUILT = [
    ROOT / "build/tools/kotlin-2.4.20/bin/kotlinc",
    ROOT / "build/android-engine/executorch-stubs.jar",
    ROOT / "build/android-core/core.jar",
]

# Lines of Engine.kt replaced by ones that misuse ExecuTorch's API as older app code did. Two
# compiles: kotlinc leaves warnings unreported once a file has errors.
MISMATCHES = {
    "errors": {
        # The status-returning load() of ExecuTorch <= 1.2: 1.3+ returns Unit and throws.
        'runtime("load ${model.programPath}") { module.load() }': 'runtime("load ${model.programPath}") { check(module.load() == 0) }',
        # generate() likewise returns Unit since 1.3.
        'runtime("generate") { module.generate(prompt, seqLen, callback, false) }': 'runtime("generate") { check(module.generate(prompt, seqLen, callback, false) == 0) }',
        # temperature is a Float.
        "LlmModule(model.programPath, model.tokenizerPath, 0.0f)": "LlmModule(model.programPath, model.tokenizerPath, 0.0)",
    },
    # resetNative() is deprecated for close(): a warning, an error under -Werror.
    "deprecated": {
        "override fun close() = module.close()": "override fun close() = module.resetNative()"
    },
}


def _mutated(tmp_path: Path, mismatches: dict[str, str]) -> tuple[Path, set[int]]:
    """A copy of Engine.kt with the mismatches applied, and the lines they are on."""
    lines = (APP / "Engine.kt").read_text().splitlines(keepends=True)
    changed: set[int] = set()
    for old, new in mismatches.items():
        hits = [i for i, line in enumerate(lines) if old in line]
        assert len(hits) == 1, (
            f"Engine.kt changed: '{old}' is on {len(hits)} lines; update MISMATCHES"
        )
        lines[hits[0]] = lines[hits[0]].replace(old, new)
        changed.add(hits[0] + 1)
    engine = tmp_path / "Engine.kt"
    engine.write_text("".join(lines))
    return engine, changed


@pytest.mark.skipif(
    not all(p.exists() for p in BUILT) or shutil.which("make") is None,
    reason="needs the engine toolchain: run `make android-core-test` (make test does) first",
)
@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_api_mismatches_fail_the_engine_compile(tmp_path: Path, kind: str) -> None:
    engine, changed = _mutated(tmp_path, MISMATCHES[kind])
    shutil.copy(APP / "InstalledModel.kt", tmp_path / "InstalledModel.kt")
    sources = f"{engine} {tmp_path / 'InstalledModel.kt'}"
    proc = subprocess.run(
        [
            "make",
            "-s",
            "android-engine-compile",
            f"ENGINE_SRC={sources}",
            f"ENGINE_JAR={tmp_path / 'out.jar'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert not (tmp_path / "out.jar").exists()
    # kotlinc names each finding as path:line:column; every mismatch is found, nothing else is.
    reported = {int(m) for m in re.findall(r"Engine\.kt:(\d+):\d+: (?:error|warning)", output)}
    assert reported == changed, output
    if kind == "deprecated":
        assert "-Werror" in output or "warnings found" in output, output


def test_only_engine_kt_calls_executorch() -> None:
    callers = sorted(p.name for p in APP.rglob("*.kt") if "org.pytorch.executorch" in p.read_text())
    assert callers == ["Engine.kt"]
    for name in ("Engine.kt", "InstalledModel.kt"):  # the compiled engine layer
        assert "import android." not in (APP / name).read_text(), name
