"""What every ``qhybrid`` command shares at the terminal: the stderr console ``err`` (logs,
progress, errors) and the stdout console ``out`` (the human-readable answer), the filter that
keeps Prefect's INFO lines off the terminal unless asked for, the one JSON document a command
prints with ``--json`` (:func:`emit`), the error exit with its exit code (:func:`fail`), the
settings a command reads once from the environment, and the typer command and group classes
whose help shows a flag as a flag.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from typer._click.core import Context, Parameter
from typer.core import TyperCommand, TyperGroup

from qhybrid.core import ErrorRecord, ErrorReport, QhybridError, Settings, load_settings
from qhybrid_entrypoints.exits import exit_code


def _flags_as_flags(params: list[Parameter]) -> None:
    # Typer's help shows a type for every option, <bool> for a flag too; a flag takes no value.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class FlagCommand(TyperCommand):
    """A typer command whose help shows a flag without a value type."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _flags_as_flags(params)
        return params


class FlagGroup(TyperGroup):
    """A typer group whose help, and its commands' help, show a flag without a value type."""

    command_class = FlagCommand

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _flags_as_flags(params)
        return params


err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)


class _ConsoleLevel(logging.Filter):
    """Lets through the log records at or above ``level`` (the console's threshold)."""

    def __init__(self) -> None:
        super().__init__()
        self.level = logging.WARNING

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


_console_level = _ConsoleLevel()


def console_logs(verbose: bool) -> None:
    """Prefect's console handler shows warnings and errors only, INFO too with ``verbose``.

    A filter, not the handler's level: Prefect re-applies its logging configuration's handler
    levels when its server app starts in this process. Its API log handler still sends every
    line to the Prefect UI.
    """
    _console_level.level = logging.INFO if verbose else logging.WARNING
    filter_console()


def filter_console() -> None:
    """Puts the console filter on each of Prefect's console handlers (again, after a server
    start may have replaced them)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for name in (None, "uvicorn", "fastapi"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler) and _console_level not in handler.filters:
                handler.addFilter(_console_level)


def fail(exc: QhybridError, as_json: bool) -> typer.Exit:
    """Report a qhybrid error (also as the JSON document with ``as_json``); the exit to raise.

    Args:
        exc: The error the command met.
        as_json: Whether the command prints one JSON document on stdout.

    Returns:
        The exit carrying the error's exit code (:func:`qhybrid_entrypoints.exits.exit_code`).
    """
    if as_json:
        emit(ErrorReport(error=ErrorRecord.model_validate(exc.to_dict())))
    err.print(f"[bold red]error[/] ({exc.layer}): {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(exit_code(exc))


def emit(document: BaseModel) -> None:
    """The one JSON document on stdout."""
    print(document.model_dump_json(indent=1))


def environment_settings() -> Settings:
    """The settings of this process's environment, read once by the command.

    Raises:
        InvalidInputError: A ``QHYBRID_*`` variable is unknown or invalid (naming it).
    """
    return load_settings(os.environ)
