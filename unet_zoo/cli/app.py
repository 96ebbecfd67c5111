"""The typer application every CLI module adds its commands to."""
from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="unet-zoo",
    help="U-Nets faithful to Ronneberger et al. (2015): list, compare, train, reproduce, predict, evaluate, publish.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print `message` in red on stderr and return the typer.Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)
