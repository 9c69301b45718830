"""Sharded quantized checkpoints (every 4B+ model) load back like single-file ones.

transformers merges shard metadata with dict.update, so a shard listing only its own
torchao tensors hides the others' and loading fails; each shard must carry the whole list.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from mobq import checkpoint, quantize
from mobq.schemes import SCHEMES


@pytest.fixture(scope="module")
def single_and_sharded(tiny_untied: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("shards")
    single = quantize.quantize_checkpoint(tiny_untied, root / "single", SCHEMES["8da4w"]).path
    original = quantize.CheckpointWriter
    try:  # ~100 kB shards split the tiny model into several files
        quantize.CheckpointWriter = lambda d: original(d, max_shard_bytes=100_000)  # type: ignore[misc]
        sharded = quantize.quantize_checkpoint(tiny_untied, root / "sharded", SCHEMES["8da4w"]).path
    finally:
        quantize.CheckpointWriter = original  # type: ignore[misc]
    return single, sharded


def test_the_fixture_really_is_sharded(single_and_sharded: tuple[Path, Path]) -> None:
    _, sharded = single_and_sharded
    assert len(list(sharded.glob("model-*-of-*.safetensors"))) > 1
    assert (sharded / checkpoint.INDEX_FILE).is_file()


def test_sharded_checkpoint_loads_in_transformers_with_identical_logits(
    single_and_sharded: tuple[Path, Path],
) -> None:
    from transformers import AutoModelForCausalLM

    single, sharded = single_and_sharded
    tokens = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        logits = [
            AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
            .eval()(tokens)
            .logits
            for path in (single, sharded)
        ]
    assert torch.equal(logits[0], logits[1])


def test_mobq_reader_finds_each_tensor_in_its_own_shard(
    single_and_sharded: tuple[Path, Path],
) -> None:
    single, sharded = single_and_sharded
    with checkpoint.CheckpointReader(single) as a, checkpoint.CheckpointReader(sharded) as b:
        assert sorted(a.names) == sorted(b.names)
        for name in a.names:
            x, y = a.get(name), b.get(name)
            dense = [t.dequantize() if hasattr(t, "dequantize") else t for t in (x, y)]
            assert torch.equal(dense[0], dense[1]), name


def _header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return length, json.loads(handle.read(length))


@pytest.mark.parametrize("size", ["smaller", "larger"])
def test_metadata_rewrite_keeps_the_tensors(tmp_path: Path, size: str) -> None:
    from safetensors.torch import load_file, save_file

    path = tmp_path / "x.safetensors"
    tensors = {"a": torch.arange(10.0), "b": torch.ones(3, 4, dtype=torch.bfloat16)}
    save_file(tensors, str(path), metadata={"k": "v" * 200})
    before, _ = _header(path)
    new = {"k": "w"} if size == "smaller" else {"k": "w" * 5000}
    checkpoint.set_safetensors_metadata(path, new)
    after, header = _header(path)
    assert header["__metadata__"] == new
    assert (after == before) if size == "smaller" else (after > before and after % 8 == 0)
    loaded = load_file(str(path))
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
