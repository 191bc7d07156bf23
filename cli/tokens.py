"""`lisa tokens ...`: API token administration for an account owner."""

from __future__ import annotations

import typer

app = typer.Typer(help="Create, list, update and revoke API tokens.", no_args_is_help=True)
