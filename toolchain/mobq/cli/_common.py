"""Helpers shared by the command modules: consoles and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def console(stderr: bool = False) -> Any:
    """Rich console; wide enough for tables when output is piped rather than a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, highlight=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
