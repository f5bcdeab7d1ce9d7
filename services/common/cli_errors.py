"""One-line CLI failures: known errors print a clear message and exit non-zero, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from .errors import UserError

P = ParamSpec("P")
R = TypeVar("R")

#: Errors whose message is written for the user; anything else is a bug and keeps its traceback.
#: The project's own (the zoo's, the catalog's, tritonserver's) all derive from `UserError`, so this
#: module needs none of the layers that raise them.
USER_ERRORS: tuple[type[Exception], ...] = (
    ValidationError,
    UserError,
    ValueError,
    FileNotFoundError,
    PermissionError,
)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return "invalid settings: " + "; ".join(parts)
    if isinstance(exc, LookupError) and exc.args:
        return str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return str(exc)


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn user-facing errors into `error: …` on stderr and exit code 1 (130 on Ctrl-C)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except USER_ERRORS as exc:
            typer.secho(f"error: {_message(exc)}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None

    return wrapper
