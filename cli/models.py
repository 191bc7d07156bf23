"""`lisa models ...`: the model registry and weight staging."""

from __future__ import annotations

import typer

app = typer.Typer(help="Sync, list and stage models.", no_args_is_help=True)
