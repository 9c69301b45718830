"""The memory-lean pieces: streamed shard writes, reads without mmap, per-stage peaks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mobq import hostinfo
from mobq.checkpoint import CheckpointReader, CheckpointWriter

TENSORS = {
    "a.weight": torch.randn(33, 7).to(torch.bfloat16),
    "b.bias": torch.arange(5, dtype=torch.float32),
    "c.mask": torch.tensor([True, False, True]),
    "d.scalar": torch.tensor(3, dtype=torch.int64),
    "e.empty": torch.empty(0, 4, dtype=torch.float16),
    "f.codes": torch.randint(-8, 8, (4, 6), dtype=torch.int8),
}


def test_writer_streams_each_tensor_to_disk_and_safetensors_reads_the_shard(
    tmp_path: Path,
) -> None:
    from safetensors import safe_open

    writer = CheckpointWriter(tmp_path)
    written = 0
    for name, tensor in TENSORS.items():
        writer.add(name, tensor)
        written += tensor.numel() * tensor.element_size()
        held = [v for v in vars(writer).values() if isinstance(v, (torch.Tensor, dict))]
        assert not any(isinstance(t, torch.Tensor) for d in held for t in _values(d))
        writer._data.flush()  # Python's small write buffer aside, the bytes are on disk
        (data,) = tmp_path.glob("*.partial.data")
        assert data.stat().st_size == written
    (shard,) = writer.close()
    assert not list(tmp_path.glob("*.partial*"))
    with safe_open(str(shard), framework="pt") as handle:  # the reference reader agrees
        for name, tensor in TENSORS.items():
            assert torch.equal(handle.get_tensor(name), tensor), name
    reader = CheckpointReader(tmp_path)
    for name, tensor in TENSORS.items():
        got = reader.get(name)
        assert got.dtype == tensor.dtype and torch.equal(got, tensor), name
        assert reader.shape(name) == tuple(tensor.shape)


def _values(item: object) -> list[object]:
    return list(item.values()) if isinstance(item, dict) else [item]


def test_writer_splits_shards_at_the_size_limit(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, max_shard_bytes=100)
    for index in range(4):
        writer.add(f"w{index}", torch.ones(10, dtype=torch.float32))  # 40 bytes each
    shards = writer.close()
    assert len(shards) == 2
    reader = CheckpointReader(tmp_path)
    assert reader.names == ["w0", "w1", "w2", "w3"]
    assert all(torch.equal(reader.get(n), torch.ones(10)) for n in reader.names)


def test_truncated_tensor_data_is_a_checkpoint_error(tmp_path: Path) -> None:
    from mobq.errors import CheckpointError

    writer = CheckpointWriter(tmp_path)
    writer.add("w", torch.ones(1000))
    (shard,) = writer.close()
    reader = CheckpointReader(tmp_path)
    shard.write_bytes(shard.read_bytes()[:-100])  # cut after the reader indexed the header
    with pytest.raises(CheckpointError, match="truncated"):
        reader.get("w")


def test_peak_rss_can_be_reset_per_stage() -> None:
    if not hostinfo.reset_peak_rss():
        pytest.skip("this kernel offers no /proc/self/clear_refs")
    block = torch.ones(64 * 1024**2 // 4)  # 64 MB, touched
    high = hostinfo.peak_rss_mb()
    del block
    hostinfo.release_memory()
    hostinfo.reset_peak_rss()
    assert hostinfo.peak_rss_mb() < high - 32


def test_the_tree_sampler_does_not_count_a_vforked_child_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """subprocess's vfork child (ExecuTorch's flatc, per delegate) shows its parent's memory
    until it execs; a real child with its own memory still counts."""
    import importlib.util

    bench = Path(__file__).resolve().parents[1] / "bench" / "export_memory.py"
    spec = importlib.util.spec_from_file_location("export_memory_bench", bench)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    tree = {1: [2, 3]}
    memory = {1: (1200.0, 1100.0), 2: (1200.0, 1100.0), 3: (300.0, 250.0)}
    names = {1: "python -m mobq.pte.isolate", 2: "python -m mobq.pte.isolate", 3: "flatc"}
    monkeypatch.setattr(module, "_children", lambda: tree)
    monkeypatch.setattr(module, "_memory_mb", lambda pid: memory[pid])
    monkeypatch.setattr(module, "_name", lambda pid: names[pid])
    rss, pss, seen, each = module.tree_memory_mb(1)
    assert (rss, pss) == (1500.0, 1350.0)
    assert set(seen) == {1, 2, 3} and each[2] == 0.0
