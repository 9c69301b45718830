"""Helpers shared by the command modules: consoles, JSON output, the options they repeat."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def json_option(help: str | None = None) -> Decorator:
    """`--json`, passed to the command as `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def force_option(help: str | None = "Replace an existing output directory.") -> Decorator:
    return click.option("--force", is_flag=True, help=help)


def out_dir_option(help: str | None = "Output directory.") -> Decorator:
    """A required `--out/-o` directory (the stage commands)."""
    return click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help=help)


def console(stderr: bool = False) -> Any:
    """Rich console; wide enough for tables when output is piped rather than a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, highlight=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
