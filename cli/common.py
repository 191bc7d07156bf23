"""What every `lisa` sub-command shares: error exits and turning store/AWS failures into messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from pydantic import BaseModel

err = Console(stderr=True)
T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")


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


def validated(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`, or exit 2 with what is wrong (the API's own checks, before anything is sent)."""
    from pydantic import ValidationError

    from chalicelib.config import format_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise fail(format_validation_error(error).replace("\n", "; "), code=2) from None
