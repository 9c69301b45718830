"""The ExecuTorch runtime as the apps use it: programs, methods and the stock TextLLMRunner."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from mobq.errors import InputError

PTE_MAGIC_OFFSET = 4
PTE_MAGIC = b"ET"


@cache
def load_ops() -> None:
    """Register the custom SDPA and quantized kernels a mobq .pte uses (once per process)."""
    with quiet_native_logs():  # the native libraries log cpuinfo probing when they load
        import executorch.kernels.quantized  # noqa: F401
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401


@cache
def runner_api() -> Any:
    """executorch.extension.llm.runner, imported once with its native start-up chatter hidden.

    Its first import probes the CPU and logs that to fd 1, which would land in the middle of
    `mobq bench --csv` or `--json` output; every use goes through here.
    """
    with quiet_native_logs():
        from executorch.extension.llm import runner as runners
    load_ops()
    return runners


def check_pte(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such program: {path}")
    with open(path, "rb") as handle:
        header = handle.read(8)
    if len(header) < 8 or header[PTE_MAGIC_OFFSET : PTE_MAGIC_OFFSET + 2] != PTE_MAGIC:
        raise InputError(
            f"{path} is not an ExecuTorch program (.pte): its header is wrong; re-export it"
        )
    return path


LIBRARIES = (
    "torchao",
    "executorch",
    "transformers",
    "huggingface_hub",
    "torch",
    "torch.utils._pytree",
)


def verbose_libraries() -> None:
    """`mobq -v`: the libraries' warnings and info logs, and mobq's own, without the
    tracebacks of --debug. Their progress bars stay off: mobq's own would interleave."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in (*LIBRARIES, "mobq"):
        logging.getLogger(name).setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries() -> None:
    """torchao, ExecuTorch and transformers are chatty at import; users want mobq's lines.

    The CLI calls it unless --debug; so does the export stage's child process.
    """
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # mobq shows its own progress; the hub's and transformers' tqdm bars would interleave with it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_real_stdout_fd: int | None = None
_debug = False


def set_debug(enabled: bool) -> None:
    """`mobq --debug` (or MOBQ_DEBUG=1): keep the native runtime's own output visible."""
    global _debug
    _debug = enabled


def debugging() -> bool:
    return _debug or bool(os.environ.get("MOBQ_DEBUG"))


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hide the C++ runtime's own printing (cpuinfo chatter, echoed tokens, stats lines).

    Output mobq means to show goes through `write_stdout`, which reaches the real stdout
    while the native side is silenced. MOBQ_DEBUG=1 keeps everything visible.
    """
    global _real_stdout_fd
    if debugging() or _real_stdout_fd is not None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    _real_stdout_fd = saved_out
    # ExecuTorch's Python bindings also log through sys.stdout/sys.stderr (e.g. "Program
    # validation failed"), which need not be fds 1/2 (an embedding app, click's CliRunner).
    try:
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            yield
    finally:
        _flush_c_stdio()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (devnull, saved_out, saved_err):
            os.close(fd)
        _real_stdout_fd = None


def _flush_c_stdio() -> None:
    """Flush libc's buffers so the runner's printf output lands in /dev/null, not later."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def write_stdout(text: str) -> None:
    """Write to the user's terminal even while native output is silenced."""
    if _real_stdout_fd is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        os.write(_real_stdout_fd, text.encode("utf-8", errors="replace"))


OBSERVER_MARKER = b"PyTorchObserver "


class _TokenStream:
    """The runner's stdout: token bytes, then its `PyTorchObserver {stats}` line.

    ExecuTorch's Python binding hands token pieces over as `str`, which fails on a piece that
    ends inside a multi-byte UTF-8 character (byte-level BPE splits them). The runner also
    prints every piece to stdout as raw bytes, which concatenate into valid text; reading those
    bytes through a pipe streams any language safely.
    """

    def __init__(self, forward: Any) -> None:
        self.forward = forward
        self.data = bytearray()
        self._held = b""
        self._done = False

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        if self._done or self.forward is None:
            return
        pending = self._held + chunk
        cut = pending.find(OBSERVER_MARKER)
        if cut >= 0:
            self._done = True
            self._emit(pending[:cut].rstrip(b"\n"))
            return
        # Hold back a tail that could be the start of the marker (or of a trailing newline).
        keep = _marker_prefix_len(pending)
        self._emit(pending[: len(pending) - keep])
        self._held = pending[len(pending) - keep :]

    def _emit(self, data: bytes) -> None:
        if data:
            self.forward(data)

    def text(self) -> str:
        body = bytes(self.data)
        cut = body.rfind(OBSERVER_MARKER)
        if cut >= 0:
            body = body[:cut].rstrip(b"\n")
        return body.decode("utf-8", errors="replace")


def _marker_prefix_len(data: bytes) -> int:
    """Bytes at the end of `data` that may belong to the runner's closing lines."""
    for size in range(min(len(OBSERVER_MARKER), len(data)), 0, -1):
        if OBSERVER_MARKER.startswith(data[-size:]):
            break
    else:
        size = 0
    head = data[: len(data) - size]
    # The runner prints newlines of its own before the stats line: hold any trailing run.
    return size + len(head) - len(head.rstrip(b"\n"))


@contextlib.contextmanager
def capture_runner_output(forward: Any = None) -> Iterator[_TokenStream]:
    """Route the runner's stdout through a pipe (tokens forwarded live) and silence its logs."""
    import threading

    sys.stdout.flush()
    sys.stderr.flush()
    stream = _TokenStream(forward)
    read_fd, write_fd = os.pipe()
    saved_out, saved_err = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)

    def pump() -> None:
        while chunk := os.read(read_fd, 4096):
            stream.feed(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    os.dup2(write_fd, 1)
    if not debugging():
        os.dup2(devnull, 2)
    global _real_stdout_fd
    _real_stdout_fd = saved_out
    try:
        yield stream
    finally:
        _flush_c_stdio()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(write_fd)
        reader.join(timeout=10)
        for fd in (read_fd, devnull, saved_out, saved_err):
            os.close(fd)
        _real_stdout_fd = None


def load_program(path: Path) -> Any:
    from executorch.runtime import Runtime

    load_ops()
    check_pte(path)
    try:
        with quiet_native_logs():
            return Runtime.get().load_program(str(path))
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            f"ExecuTorch's runtime could not load {path} (corrupt, truncated, or from another "
            f"ExecuTorch version?): {' '.join(str(exc).split())}; re-export it"
        ) from exc


def read_constant_methods(program: Any) -> dict[str, Any]:
    """Metadata methods (get_eos_ids, get_max_context_len, ...) of a loaded program."""
    values: dict[str, Any] = {}
    for name in sorted(program.method_names):
        if name == "forward":
            continue
        result = program.load_method(name).execute([])
        values[name] = list(result) if len(result) != 1 or name == "get_eos_ids" else result[0]
    return values


def text_runner(pte: Path, tokenizer_json: Path) -> Any:
    """ExecuTorch's stock TextLLMRunner: the C++ runner the iOS and Android apps link."""
    return _stock_runner("TextLLMRunner", pte, tokenizer_json)


def multimodal_runner(pte: Path, tokenizer_json: Path) -> Any:
    """ExecuTorch's stock MultimodalRunner (vision_encoder / token_embedding / text_decoder)."""
    return _stock_runner("MultimodalRunner", pte, tokenizer_json)


def _stock_runner(name: str, pte: Path, tokenizer_json: Path) -> Any:
    runners = runner_api()
    check_pte(pte)
    if not Path(tokenizer_json).is_file():
        raise InputError(f"missing tokenizer: {tokenizer_json}")
    try:
        with quiet_native_logs():
            return getattr(runners, name)(str(pte), str(tokenizer_json))
    except RuntimeError as exc:
        raise InputError(
            f"ExecuTorch's runner could not load {pte} (corrupt, truncated, or from another ExecuTorch "
            f"version?): {exc}; re-export it"
        ) from exc


class ForwardSession:
    """The program's `forward` with its KV cache: prefill in chunks, then one token per step.

    The cache lives inside the program; `pos` is how many positions hold valid keys/values.
    Rewinding (`rewind(n)`) is free: attention only reads positions below the current one,
    so later entries are simply overwritten.
    """

    def __init__(self, pte: Path, *, ctx: int, max_seq_len: int) -> None:
        import torch

        self._torch = torch
        self.ctx = ctx
        # Export makes the prefill length dynamic up to max_seq_len - 1 (one spare position).
        self.chunk = max(1, max_seq_len - 1)
        self.pos = 0
        program = load_program(pte)
        with quiet_native_logs():
            self.method = program.load_method("forward")

    def room(self) -> int:
        return self.ctx - self.pos

    def rewind(self, pos: int) -> None:
        if not 0 <= pos <= self.pos:
            raise InputError(f"cannot rewind the KV cache to {pos} (it holds {self.pos})")
        self.pos = pos

    def feed(self, ids: list[int]) -> Any:
        """Run `ids` from the current position; returns the logits after the last one."""
        if not ids:
            raise InputError("nothing to feed the model: the token list is empty")
        if self.pos + len(ids) > self.ctx:
            raise InputError(
                f"{self.pos + len(ids)} tokens do not fit the context window of {self.ctx}"
            )
        torch = self._torch
        logits = None
        with quiet_native_logs():
            for start in range(0, len(ids), self.chunk):
                piece = ids[start : start + self.chunk]
                tokens = torch.tensor([piece], dtype=torch.long)
                position = torch.tensor([self.pos], dtype=torch.long)
                logits = self.method.execute([tokens, position])[0]
                self.pos += len(piece)
        return logits.reshape(-1)
