"""The conventions every bm-* command shares: options, exit codes, one-line errors.

Exit codes mean the same in every command:
  0  done
  1  some inputs failed (each reported on one line; the rest went on)
  2  usage error, or an unusable model / checkpoint / provider
  3  (bm-export) the parity gate failed
Messages go to stderr as `error: ...`, `warning: ...` or `note: ...`, one line each.
"""
from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from bonemarrow.runtime.errors import first_line, printable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3

#: click's settings for every command: -h works like --help.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

F = TypeVar("F", bound=Callable[..., Any])


def say(kind: str, message: str) -> None:
    """Print `kind: message` as one line on stderr (newlines in the message are escaped)."""
    click.echo(f"{kind}: {printable(message)}", err=True)


def error(message: str) -> None:
    say("error", message)


def warn(message: str) -> None:
    say("warning", message)


def note(message: str) -> None:
    say("note", message)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print `error: message` and exit with `code` (default: usage error / unusable model)."""
    error(message)
    sys.exit(code)


def require(module: str, extra: str, what: str | None = None) -> Any:
    """Import `module`, or exit 2 with the pip command that installs the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        purpose = f" (needed for {what})" if what else ""
        fail(f"{missing} is not installed{purpose}: pip install 'bonemarrow-seg[{extra}]'")


class SizeType(click.ParamType):
    """WIDTHxHEIGHT, e.g. 3000x1000 -> (3000, 1000), each side at least `minimum`."""

    name = "WxH"

    def __init__(self, minimum: int = 1, maximum: int = 1_000_000):
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
        if not match:
            self.fail(f"{value!r} is not WIDTHxHEIGHT, e.g. 1024x512", param, ctx)
        width, height = int(match.group(1)), int(match.group(2))
        for side in (width, height):
            if not self.minimum <= side <= self.maximum:
                self.fail(f"{width}x{height}: each side must be {self.minimum}..{self.maximum} px", param, ctx)
        return width, height


def quiet_option(help: str = "No progress bars or notes; errors are still printed.") -> Callable[[F], F]:
    return click.option("-q", "--quiet", is_flag=True, help=help)


def threads_option(help: str = "CPU threads [default: the CPUs this process may use].") -> Callable[[F], F]:
    return click.option("--threads", type=click.IntRange(1, 1024), default=None, help=help)


def choice(registry: Any, **kwargs: Any) -> click.Choice:
    """A click.Choice over a registry (a dict's keys or a sequence), so lists are never repeated."""
    return click.Choice(list(registry), **kwargs)


__all__ = [
    "CONTEXT_SETTINGS", "EXIT_FAILED", "EXIT_GATE", "EXIT_OK", "EXIT_USAGE", "SizeType", "choice", "error", "fail",
    "first_line", "note", "printable", "quiet_option", "require", "say", "threads_option", "warn",
]
