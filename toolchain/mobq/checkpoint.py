"""Reading and writing checkpoints one tensor at a time.

Safetensors only, plus torchao's flattened form for quantized tensors (no pickles).
Legacy `.bin`/`.pt` files are read with `torch.load(weights_only=True)`, which refuses any
pickle that would construct objects other than tensors, so a planted pickle cannot run code.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, KeysView
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobq.errors import CheckpointError
from mobq.families import text_config

INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
DEFAULT_SHARD_BYTES = 2 * 1024**3


def _safe_open(path: Path) -> Any:
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(
            f"{path} is not a readable safetensors file (corrupt or truncated?): "
            f"{' '.join(str(exc).split())}; re-download or re-save it"
        ) from exc


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


class _TensorFile:
    """One safetensors file whose tensors are read with plain reads, not through a mmap.

    Pages of a mmap that were read stay in the process's resident set until the file is
    closed, so streaming a 16 GB checkpoint through safetensors' mmap made it all count as
    the process's memory; a read goes through the page cache, which the kernel owns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = _safe_open(path)  # validates the header with safetensors' own checks
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        self._data_start = 8 + size
        self._header: dict[str, Any] = header

    def metadata(self) -> dict[str, str] | None:
        return self._handle.metadata()

    def keys(self) -> KeysView[str]:
        return self._header.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._header

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._header[name]["shape"])

    def get_tensor(self, name: str) -> torch.Tensor:
        info = self._header[name]
        start, end = info["data_offsets"]
        out = torch.empty(end - start, dtype=torch.uint8)
        with open(self.path, "rb") as handle:
            handle.seek(self._data_start + start)
            got = handle.readinto(memoryview(out.numpy()))
        if got != end - start:
            raise CheckpointError(
                f"{self.path} ends inside tensor '{name}' (truncated?); re-download or re-save it"
            )
        return out.view(_DTYPES[info["dtype"]]).reshape(info["shape"])


def _is_torchao(metadata: dict[str, str] | None) -> bool:
    return bool(metadata) and "tensor_names" in metadata


def _has_data(name: str, is_plain: bool, keys: set[str]) -> bool:
    """torchao stores a quantized `m.weight` as `m._weight_<component>` entries."""
    if is_plain:
        return name in keys
    module, attribute = name.rsplit(".", 1)
    prefix = f"{module}._{attribute}_"
    return any(key.startswith(prefix) for key in keys)


@dataclass
class _Entry:
    file: Path
    meta: dict[str, Any] | None  # torchao subclass description, None for a plain tensor


class CheckpointReader:
    """Logical tensors of a checkpoint directory, materialized on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._handles: dict[Path, Any] = {}
        self._entries: dict[str, _Entry] = {}
        self._pickled: dict[str, torch.Tensor] | None = None
        files = safetensors_files(self.directory)
        if files:
            for file in files:
                self._index_file(file)
        else:
            self._load_pickled()

    def _index_file(self, file: Path) -> None:
        handle = _TensorFile(file)
        self._handles[file] = handle
        metadata = handle.metadata()
        if _is_torchao(metadata):
            # Every shard carries the metadata of all tensors (transformers merges it across
            # shards); a tensor belongs to the shard that holds its data.
            keys = set(handle.keys())
            for name in json.loads(metadata["tensor_names"]):
                meta = json.loads(metadata[name])
                is_plain = meta.get("_type") == "Tensor"
                if _has_data(name, is_plain, keys):
                    self._entries[name] = _Entry(file, None if is_plain else meta)
        else:
            for name in handle.keys():  # noqa: SIM118 (a file handle, not a dict)
                self._entries[name] = _Entry(file, None)

    def _load_pickled(self) -> None:
        candidates = sorted(
            p for p in self.directory.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file()
        )
        if not candidates:
            raise CheckpointError(
                f"no weights in {self.directory}: expected *.safetensors (or a legacy .bin/.pt)"
            )
        state: dict[str, torch.Tensor] = {}
        for path in candidates:
            state.update(load_pickled_weights(path))
        self._pickled = state

    @property
    def names(self) -> list[str]:
        if self._pickled is not None:
            return list(self._pickled)
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in (self._pickled if self._pickled is not None else self._entries)

    def is_quantized(self, name: str) -> bool:
        return self._pickled is None and self._entries[name].meta is not None

    def get(self, name: str) -> torch.Tensor:
        if self._pickled is not None:
            return self._pickled[name]
        entry = self._entries.get(name)
        if entry is None:
            raise CheckpointError(f"tensor '{name}' is not in the checkpoint at {self.directory}")
        handle = self._handles[entry.file]
        if entry.meta is None:
            return handle.get_tensor(name)
        return _unflatten_one(name, entry.meta, handle)

    def shape(self, name: str) -> tuple[int, ...]:
        if self._pickled is not None or self.is_quantized(name):
            return tuple(self.get(name).shape)
        entry = self._entries[name]
        return self._handles[entry.file].shape(name)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.names:
            yield name, self.get(name)

    def close(self) -> None:
        self._handles.clear()
        self._pickled = None

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unflatten_one(name: str, meta: dict[str, Any], handle: Any) -> torch.Tensor:
    from torchao.prototype.safetensors.safetensors_utils import object_from_dict

    module, param = name.rsplit(".", 1)
    data: dict[str, torch.Tensor] = {}
    for part in meta["_tensor_data_names"]:
        key = f"{module}._{param}_{part}"
        data[part] = handle.get_tensor(key)
    for part in meta.get("_optional_tensor_data_names", []) or []:
        key = f"{module}._{param}_{part}"
        if key in handle:
            data[part] = handle.get_tensor(key)
    described = {**meta, "_data": {**meta["_data"], **data}}
    return object_from_dict(described)


def load_pickled_weights(path: Path) -> dict[str, torch.Tensor]:
    """A legacy checkpoint, loaded so that nothing but tensors can be constructed."""
    import pickle
    import zipfile

    try:
        # mmap works only for torch.save's zip format; older raw pickles are read whole.
        state = torch.load(
            str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it is a pickle holding more than tensors, which could run "
            "code; convert it to safetensors (model.save_pretrained(..., safe_serialization=True))"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a mapping of tensor names to tensors")
    return state


def safetensors_files(directory: Path) -> list[Path]:
    directory = Path(directory)
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index} is not a valid safetensors index: {exc}") from exc
        files = [directory / name for name in dict.fromkeys(weight_map.values())]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shards that are missing: {', '.join(missing)}")
        return files
    return sorted(directory.glob("*.safetensors"))


def checkpoint_bytes(directory: Path) -> int:
    files = safetensors_files(directory)
    if not files:
        files = [p for p in Path(directory).iterdir() if p.suffix in PICKLE_SUFFIXES]
    return sum(f.stat().st_size for f in files)


def flatten(name: str, tensor: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """One logical tensor -> safetensors entries and torchao metadata."""
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    data, meta = flatten_tensor_state_dict({name: tensor})
    meta.pop("tensor_names", None)
    return data, meta


_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


class CheckpointWriter:
    """Writes tensors into safetensors shards as they arrive, holding none of them in memory.

    Each tensor's bytes go to the shard's data file at once; the header (which safetensors
    puts first) is written when the shard is complete, followed by a copy of the data.
    """

    def __init__(self, directory: Path, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_shard_bytes = max_shard_bytes
        self._data: Any = None  # the open data file of the shard being written
        self._header: dict[str, Any] = {}
        self._pending_meta: dict[str, str] = {}
        self._pending_names: list[str] = []
        self._pending_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self._all_meta: dict[str, str] = {}
        self._all_names: list[str] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        data, meta = flatten(name, tensor.detach())
        size = sum(t.numel() * t.element_size() for t in data.values())
        if self._header and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        if self._data is None:
            self._data = open(self._shard_path(".data"), "wb")  # noqa: SIM115 (closed in _flush)
        for key, value in data.items():
            self._write_tensor(key, value)
        self._pending_meta.update(meta)
        self._pending_names.append(name)
        self._all_meta.update(meta)
        self._all_names.append(name)

    def _shard_path(self, suffix: str = "") -> Path:
        return self.directory / f"shard-{len(self._shards):05d}.safetensors.partial{suffix}"

    def _write_tensor(self, key: str, value: torch.Tensor) -> None:
        flat = value.contiguous().reshape(-1)
        raw = flat.view(torch.uint8) if flat.numel() else flat.new_empty(0, dtype=torch.uint8)
        start = self._pending_bytes
        self._data.write(memoryview(raw.numpy()))
        self._pending_bytes += raw.numel()
        self._header[key] = {
            "dtype": _DTYPE_NAMES[value.dtype],
            "shape": list(value.shape),
            "data_offsets": [start, self._pending_bytes],
        }

    def _flush(self) -> None:
        path = self._shard_path()
        data_path = self._shard_path(".data")
        if self._data is None:  # an empty checkpoint still gets one (empty) shard
            self._data = open(data_path, "wb")  # noqa: SIM115
        self._data.close()
        metadata = {**self._pending_meta, "tensor_names": json.dumps(self._pending_names)}
        header = json.dumps({"__metadata__": metadata, **self._header}).encode()
        header += b" " * (-len(header) % 8)  # safetensors aligns the data to 8 bytes
        with open(path, "wb") as out, open(data_path, "rb") as data:
            out.write(len(header).to_bytes(8, "little"))
            out.write(header)
            shutil.copyfileobj(data, out, 16 * 1024**2)
        data_path.unlink()
        self._shards.append((path, list(self._header)))
        self.total_bytes += self._pending_bytes
        self._data, self._header, self._pending_meta, self._pending_names = None, {}, {}, []
        self._pending_bytes = 0

    def close(self) -> list[Path]:
        if self._header or not self._shards:
            self._flush()
        count = len(self._shards)
        if count > 1 and self._all_meta:
            # transformers merges shard metadata with dict.update, so each shard's own
            # `tensor_names` would hide the others': give every shard the whole list.
            merged = {**self._all_meta, "tensor_names": json.dumps(self._all_names)}
            for partial, _ in self._shards:
                set_safetensors_metadata(partial, merged)
        final: list[Path] = []
        weight_map: dict[str, str] = {}
        for number, (partial, keys) in enumerate(self._shards, start=1):
            name = (
                "model.safetensors"
                if count == 1
                else f"model-{number:05d}-of-{count:05d}.safetensors"
            )
            target = self.directory / name
            partial.rename(target)
            final.append(target)
            weight_map.update(dict.fromkeys(keys, name))
        if count > 1:
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
            (self.directory / INDEX_FILE).write_text(json.dumps(index, indent=2))
        return final


def set_safetensors_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replace a safetensors file's `__metadata__`; tensor data offsets are header-relative.

    In place when the new header fits the old one's space (safetensors allows trailing
    spaces in the header), else the data is streamed into a new file behind the new header.
    """
    import shutil
    import struct

    path = Path(path)
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(encoded) <= length:
        with open(path, "r+b") as handle:
            handle.seek(8)
            handle.write(encoded.ljust(length, b" "))
        return
    padded = encoded.ljust(-(-len(encoded) // 8) * 8, b" ")  # keep the data 8-byte aligned
    rewritten = path.with_name(path.name + ".meta")
    with open(path, "rb") as source, open(rewritten, "wb") as target:
        source.seek(8 + length)
        target.write(struct.pack("<Q", len(padded)))
        target.write(padded)
        shutil.copyfileobj(source, target, 1 << 24)
    rewritten.replace(path)


# What travels beside the weights through every stage (tokenizer, generation settings).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
)
SIDE_FILES = ("generation_config.json", "preprocessor_config.json", "processor_config.json")
PARAMS_FILE = "params.json"  # ExecuTorch ModelArgs, written by convert


def is_tied(config: Any, reader: CheckpointReader, lm_head_key: str) -> bool:
    tied = bool(
        getattr(
            text_config(config),
            "tie_word_embeddings",
            getattr(config, "tie_word_embeddings", False),
        )
    )
    return tied or lm_head_key not in reader


def copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer and generation settings travel with every stage's output."""
    for name in (*TOKENIZER_FILES, *SIDE_FILES):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
