"""mobq export against the model card's stock `export_llama` command, side by side.

Both start from the same random-weight checkpoint (the recipe's architecture, `--layers N` for
a proxy): mobq through `bench/export_memory.py` (its whole pipeline, verify included), stock
from that checkpoint's float weights in ExecuTorch's llama layout (mobq's untie + convert
stages, saved as the .pth `export_llama` reads) with the cards' flags:

    -kv --use_sdpa_with_kv_cache -X -d fp32 -qmode 8da4w -G 32 -E 8,0
    --max_seq_length CTX --max_context_length CTX   [--xnnpack-extended-ops with --extended]

mobq runs its default program (extended ops), and with --mobq-x also `--no-extended-ops`, the
program stock's `-X` makes.

Each command runs in its own process tree, measured from outside (wall time, peak PSS of the
tree, sampled every 0.1 s). Run nothing else meanwhile; the CPU and load are printed.

    python bench/stock_export.py qwen3-4b --layers 8 --json-out side8.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a recipe name (its architecture, random weights)")
    parser.add_argument("--layers", type=int, help="proxy: this many decoder layers")
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--extended", action="store_true", help="also stock --xnnpack-extended-ops")
    parser.add_argument(
        "--extended-only",
        action="store_true",
        help="stock --xnnpack-extended-ops instead of stock -X (a re-run of one side)",
    )
    parser.add_argument("--skip-mobq", action="store_true")
    parser.add_argument("--skip-stock", action="store_true", help="mobq only (re-runs)")
    parser.add_argument(
        "--mobq-x", action="store_true", help="also mobq --no-extended-ops (the -X program)"
    )
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--scratch", type=Path, help="parent of the scratch folder (disk: ~40 GB at 4B)"
    )
    parser.add_argument(
        "--random-from",
        type=Path,
        help="a stage cache whose random/ checkpoint to hard-link instead of building it again",
    )
    args = parser.parse_args(argv)
    if args.scratch and not args.scratch.is_dir():
        parser.error(f"--scratch {args.scratch}: no such directory")
    from mobq.errors import ModelNotFound
    from mobq.recipes import get_recipe

    try:
        get_recipe(args.model)
    except ModelNotFound as error:
        parser.error(str(error))
    if args.random_from and not (args.random_from / "random").is_dir():
        parser.error(f"--random-from {args.random_from}: no random/ checkpoints in that cache")
    return args


def _recipe(name: str, layers: int | None) -> Any:
    from mobq.recipes import get_recipe

    recipe = get_recipe(name)
    if layers:
        architecture = {**recipe.architecture, "num_hidden_layers": layers}
        recipe = recipe.model_copy(update={"architecture": architecture})
    return recipe


def stock_inputs(args: argparse.Namespace, cache: Path, work: Path) -> tuple[Path, Path]:
    """(checkpoint.pth, params.json): the float weights mobq's random checkpoint holds."""
    import torch
    from safetensors.torch import load_file

    from mobq import random_weights
    from mobq.checkpoint import PARAMS_FILE
    from mobq.convert import convert_checkpoint
    from mobq.untie import untie_checkpoint

    os.environ["MOBQ_CACHE"] = str(cache)
    source = random_weights.cached_build(_recipe(args.model, args.layers), seed=0)
    untie_checkpoint(source, work / "untied")
    convert_checkpoint(work / "untied", work / "converted")
    shutil.rmtree(work / "untied")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted((work / "converted").glob("*.safetensors")):
        state.update(load_file(str(shard)))
        shard.unlink()  # the .pth holds them now; full size would not fit the disk twice
    # No "int8"/"8da4w" in the name: export_llama would apply legacy quantizers on load.
    checkpoint = work / "float_weights.pth"
    torch.save(state, checkpoint)
    return checkpoint, work / "converted" / PARAMS_FILE


def link_random_checkpoints(source_cache: Path, cache: Path) -> None:
    """Hard-link another cache's random checkpoints: same seed, same bytes, no rebuild."""
    for path in (source_cache / "random").rglob("*"):
        target = cache / "random" / path.relative_to(source_cache / "random")
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)


def timed_tree(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from export_memory import measured_run

    run = measured_run(command, env)
    return {
        "exit_code": run["exit_code"],
        "wall_s": round(run["wall"], 1),
        "tree_peak_pss_mb": round(run["sampler"].peak_pss_mb, 1),
        # ru_maxrss of the process itself: exact where the command is one process (stock).
        "root_maxrss_mb": round(run["usage"].ru_maxrss / 1024, 1),
        "cpu_user_s": round(run["usage"].ru_utime, 1),
        "cpu_sys_s": round(run["usage"].ru_stime, 1),
        "samples": run["sampler"].samples,
        "sampling_s": round(run["sampler"].sampling_seconds, 1),
        "load_avg_before": [round(x, 2) for x in run["load_before"]],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def stock(args: argparse.Namespace, checkpoint: Path, params: Path, work: Path, extended: bool):
    command = [sys.executable, "-m", "executorch.examples.models.llama.export_llama"]
    command += ["--checkpoint", str(checkpoint), "--params", str(params)]
    command += ["-kv", "--use_sdpa_with_kv_cache", "-X", "-d", "fp32", "-qmode", "8da4w"]
    command += ["-G", "32", "-E", "8,0", "--max_seq_length", str(args.ctx)]
    command += ["--max_context_length", str(args.ctx)]
    command += ["--xnnpack-extended-ops"] if extended else []
    command += ["--output_name", str(work / f"stock{'-ext' if extended else ''}.pte")]
    result = timed_tree(command, {**os.environ})
    pte = work / f"stock{'-ext' if extended else ''}.pte"
    if pte.is_file():
        result["pte_bytes"] = pte.stat().st_size
        pte.unlink()  # its size is what the comparison needs; the disk is tight at full size
    return {"command": " ".join(command[1:]), **result}


def mobq(args: argparse.Namespace, cache: Path, work: Path, extended: bool) -> dict[str, Any]:
    out = work / f"mobq{'' if extended else '-x'}.json"
    command = [sys.executable, str(HERE / "export_memory.py"), args.model, "--ctx", str(args.ctx)]
    command += ["--cache", str(cache), "--json-out", str(out)]
    command += ["--layers", str(args.layers)] if args.layers else []
    command += [] if extended else ["--no-extended-ops"]
    subprocess.run(command, check=False)
    return json.loads(out.read_text()) if out.is_file() else {"exit_code": None}


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(REPO / "toolchain"))
    from mobq import hostinfo

    args = parse_args(argv)
    rows: dict[str, Any] = {"host": hostinfo.host(), "args": vars(args) | {"json_out": None}}
    with tempfile.TemporaryDirectory(prefix="mobq-stock-", dir=args.scratch) as scratch:
        work, cache = Path(scratch), Path(scratch) / "cache"
        if args.random_from:
            link_random_checkpoints(args.random_from, cache)
        if not args.skip_stock:
            checkpoint, params = stock_inputs(args, cache, work)
            if not args.extended_only:
                rows["stock"] = stock(args, checkpoint, params, work, extended=False)
            if args.extended or args.extended_only:
                rows["stock_extended_ops"] = stock(args, checkpoint, params, work, extended=True)
        if not args.skip_mobq:  # its random weights are the cached ones the stock run used
            rows["mobq"] = mobq(args, cache, work, extended=True)
            if args.mobq_x:
                rows["mobq_x"] = mobq(args, cache, work, extended=False)
    print(f"cpu {rows['host']['cpu']}, {args.model}, {args.layers or 'all'} layers, ctx {args.ctx}")
    for name in ("stock", "stock_extended_ops", "mobq", "mobq_x"):
        if name in rows:
            r = rows[name]
            print(
                f"{name:>20}: {r.get('wall_s')} s, tree peak {r.get('tree_peak_pss_mb')} MB, "
                f"exit {r.get('exit_code')}"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
