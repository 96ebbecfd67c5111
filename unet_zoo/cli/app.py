"""The typer application every CLI module adds its commands to."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from unet_zoo.cli.help import ReadableGroup
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.files import check_output_path

app = typer.Typer(
    name="unet-zoo",
    help="U-Nets faithful to Ronneberger et al. (2015): list, compare, train, reproduce, predict, evaluate, publish.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    cls=ReadableGroup,  # flags without <bool>, arguments as MODEL (unet_zoo/cli/help.py)
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` in red on stderr and return the typer.Exit to raise."""
    # escape: messages quote TOML tables like [model] and options like [--tta], which rich would eat as markup
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def check_device(device: str) -> None:
    """Fail clearly (exit 2) when `device` is not a torch device or names a GPU this machine lacks."""
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as err:
        raise fail(str(err)) from None


def check_output(
    path: Path,
    name: str,
    *,
    folder: bool = False,
    contents: Iterable[str] = (),
    overwrite: bool = False,
    option: str | None = "--overwrite",
) -> Path:
    """`check_output_path` for a command's output, before any work: a problem is the red error line, exit 2.

    `name` is the option naming the path (the message starts with it); `option` is the command's flag that
    allows replacing existing files (None: it has none).
    """
    hint = f"pass {option} to replace it" if option else "choose another path or remove it first"
    try:
        return check_output_path(path, folder=folder, contents=contents, overwrite=overwrite, overwrite_hint=hint)
    except OSError as err:
        raise fail(f"{name}: {err}") from None
