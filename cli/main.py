"""The `lisa` command: one Typer sub-app per concern."""

from __future__ import annotations

import typer

from cli import limits, models, rag, tokens, usage

app = typer.Typer(help="LISA: self-hosted LLM serving.", no_args_is_help=True)
app.add_typer(tokens.app, name="tokens")
app.add_typer(models.app, name="models")
app.add_typer(rag.app, name="rag")
app.add_typer(limits.app, name="limits")
app.command(name="usage")(usage.usage)


def main() -> None:
    """The `lisa` console script (pyproject [project.scripts])."""
    app()


if __name__ == "__main__":
    main()
