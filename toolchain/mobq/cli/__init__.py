"""The `mobq` command line: a thin layer over the stage modules.

Commands parse options and print; the work lives in the stage modules, which never import
click. Errors from those modules become one clear line and a non-zero exit (`--debug` shows
the traceback).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from mobq import __version__

EXIT_INTERRUPTED = 130


def _interrupt_on_sigterm() -> None:
    """Ctrl-C and `kill` (SIGTERM) unwind the same way, so temporaries are removed on the way
    out; the request is also remembered, in case a library swallows the KeyboardInterrupt."""
    import signal

    from mobq import progress

    def handler(signum: int, frame: Any) -> None:
        progress.request_interrupt()
        raise KeyboardInterrupt

    progress.clear_interrupt()
    with contextlib.suppress(ValueError):  # not the main thread (e.g. inside a test runner)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


class MobqGroup(click.Group):
    """Turns domain errors into one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from mobq.errors import MobqError

        debug = bool(ctx.params.get("debug")) or bool(os.environ.get("MOBQ_DEBUG"))
        try:
            return super().invoke(ctx)
        except MobqError as exc:
            if debug:
                raise
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("Interrupted: nothing half-written was left behind.", fg="yellow", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            if debug:
                raise
            message = " ".join(str(exc).split())[:300]
            click.secho(
                f"Internal error: {type(exc).__name__}: {message} (rerun with --debug for the traceback)",
                fg="red",
                err=True,
            )
            sys.exit(1)


@click.group(cls=MobqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mobq")
@click.option("--debug", is_flag=True, help="Show tracebacks and library logs.")
@click.option(
    "--verbose", "-v", is_flag=True, help="Library warnings and info logs, without tracebacks."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def cli(debug: bool, verbose: bool, quiet: bool) -> None:
    """mobq: a Hugging Face LLM to a verified ExecuTorch .pte for phones.

    \b
    mobq models                              the recipes and their architectures
    mobq export qwen3-4b --ctx 1024          download, quantize, export, verify
    mobq export ./my-finetune --scheme fp32  any local checkpoint of a supported family
    mobq run exports/qwen3-4b-8da4w-ctx1024 --prompt "Hello"

    -q: no progress; -v: library logs too; --debug: tracebacks and everything.
    Shell completion: eval "$(mobq completion bash)" (or zsh, fish) in your shell's rc file.
    """
    from mobq import runtime

    runtime.set_debug(debug)
    if verbose and not debug:
        runtime.verbose_libraries()
    elif not debug:
        runtime.quiet_libraries()
    _interrupt_on_sigterm()
    from mobq import progress

    # Set either way: a process that runs several commands (tests, notebooks) must not keep
    # the previous command's reporter.
    progress.set_reporter(progress.SilentReporter() if quiet else progress.RichReporter())
    from mobq import phaselog

    phaselog.install_from_env()  # bench/export_memory.py: when each stage and step ran


# Each module adds its commands to `cli`; one line here per command module.
from mobq.cli import (  # noqa: E402, F401
    app_commands,
    export_commands,
    hub_commands,
    runtime_commands,
    server_commands,
    sweep_commands,
)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script (click's) for SHELL.

    \b
    eval "$(mobq completion bash)"     in ~/.bashrc
    eval "$(mobq completion zsh)"      in ~/.zshrc
    mobq completion fish > ~/.config/fish/completions/mobq.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    click.echo(complete(cli, {}, "mobq", "_MOBQ_COMPLETE").source())  # type: ignore[misc]


def main() -> None:
    cli()
