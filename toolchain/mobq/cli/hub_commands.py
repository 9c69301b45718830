"""`mobq publish`: an export or a server checkpoint to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import click

from mobq.cli import cli
from mobq.cli._common import json_option, print_json


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("repo_id", required=False, metavar="ORG/NAME")
@click.option("--repo", "repo_option", metavar="ORG/NAME", help="Same as the ORG/NAME argument.")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--message", help="Commit message.")
@json_option("Machine-readable output.")
def publish(
    directory: Path,
    repo_id: str | None,
    repo_option: str | None,
    private: bool,
    message: str | None,
    as_json: bool,
) -> None:
    """Push DIRECTORY to the Hub with a model card: a verified export (model.pte, tokenizer,
    manifest.json, bench.json if present) or an int4-hqq server checkpoint.

    The token is huggingface_hub's: `hf auth login`, or HF_TOKEN.

    \b
    mobq publish exports/qwen3-0.6b-8da4w-ctx512 me/Qwen3-0.6B-8da4w-ExecuTorch
    mobq publish exports/qwen3-8b-int4 me/Qwen3-8B-INT4 --private
    mobq run me/Qwen3-0.6B-8da4w-ExecuTorch -p "Hello"    then anyone can run it
    """
    from mobq import upload
    from mobq.errors import InputError

    if repo_id and repo_option and repo_id != repo_option:
        raise InputError(f"two repos given ({repo_id} and --repo {repo_option}); pass one")
    target = repo_id or repo_option
    if not target:
        raise InputError("name the repo to publish to: mobq publish DIRECTORY ORG/NAME")
    result = upload.run(directory, target, private=private, message=message)
    if as_json:
        print_json(result.to_dict())
        return
    click.echo(
        f"published {result.kind} {directory}: {len(result.files)} files "
        f"({result.bytes / 1e9:.2f} GB) to {result.url}"
    )
