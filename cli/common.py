"""What every `lisa` sub-command shares: error exits and turning store/AWS failures into messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error; return the Exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def run(action: Callable[[], T], resource: str, known: Mapping[type[Exception], int]) -> T:
    """Call `action`; an error of a `known` type exits with its code, an AWS failure names `resource` and where."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.settings import get_settings

    try:
        return action()
    except tuple(known) as error:
        code = next(c for kind, c in known.items() if isinstance(error, kind))
        raise fail(getattr(error, "message", None) or str(error), code=code) from None
    except (BotoCoreError, ClientError) as error:
        settings = get_settings()
        where = settings.aws_endpoint_url or f"AWS {settings.region}"
        raise fail(f"{resource} at {where}: {error}") from None
