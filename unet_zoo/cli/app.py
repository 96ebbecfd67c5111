"""The typer application every CLI module adds its commands to."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from unet_zoo.cli.help import ReadableGroup
from unet_zoo.runtime.settings import use_available_cores
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import all_or_nothing, check_output_path, check_replaceable


class ZooTyper(typer.Typer):
    """A typer app whose commands turn bad input (`InputError`, raised anywhere below them) into the one red
    ``error:`` line of `fail`, exit 2: the one place where library errors about the user's files, options and
    metadata become command-line errors, so no command can let one through as a traceback. A command given
    ``--json`` (a parameter ``as_json``) prints only JSON on stdout (`print_json`); all else goes to stderr."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(func)
            def run(*a: Any, **kw: Any) -> Any:
                try:
                    with json_on_stdout(bool(kw.get("as_json"))):  # the --json of `unet_zoo.cli.options.Json`
                        return func(*a, **kw)
                except InputError as err:
                    raise fail(str(err)) from None

            register(run)
            return func

        return decorator


# \\[: rich would take [export] for markup and drop it
EXPORT_EXTRA_NOTE = (
    'ONNX, bioimage.io export and the onnxruntime backend need the export extra: pip install "unet-zoo\\[export]".'
)

app = ZooTyper(
    name="unet-zoo",
    help="U-Nets faithful to Ronneberger et al. (2015): list, compare, train, reproduce, predict, evaluate, publish.\n\n"
    + EXPORT_EXTRA_NOTE,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    cls=ReadableGroup,  # flags without <bool>, arguments as MODEL (unet_zoo/cli/help.py)
)
console = Console()
err_console = Console(stderr=True)


# library messages name both spellings ("pass overwrite=True (--overwrite)"); the command line says only its own
# (every command replaces existing outputs with --overwrite, also where the Python argument is force=True)
_API_WORDS = [
    (re.compile(r"overwrite=True \(--overwrite\)|--overwrite \(overwrite=True\)|overwrite=True"), "--overwrite"),
    (re.compile(r"force=True \(--overwrite\)|--overwrite \(force=True\)|force=True"), "--overwrite"),
]


def cli_words(message: str) -> str:
    """`message` (a library error) in the command line's words, on one line: keyword arguments such as
    ``overwrite=True`` become the options that set them (``--overwrite``)."""
    for pattern, option in _API_WORDS:
        message = pattern.sub(option, message)
    return re.sub(r"\s*\n\s*", " ", message).strip()


@app.callback()
def _threads() -> None:
    """U-Nets faithful to Ronneberger et al. (2015): list, compare, train, reproduce, predict, evaluate, publish."""
    # every command runs torch (and onnxruntime / OpenVINO, which follow it) on the cores this process may use
    try:
        use_available_cores()
    except ValueError as err:  # a bad UNET_ZOO_THREADS
        raise fail(str(err)) from None


@contextmanager
def json_on_stdout(enabled: bool) -> Iterator[None]:
    """While `enabled` (a command's --json), what `console` prints (tables, messages, progress) goes to stderr,
    so that stdout carries only the JSON of `print_json`."""
    if not enabled:
        yield
        return
    before = console.stderr
    console.stderr = True
    try:
        yield
    finally:
        console.stderr = before


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout (the output of --json), whatever `console` prints to meanwhile."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` (in the command line's words, one line) in red on stderr and return the typer.Exit to raise."""
    # escape: messages quote TOML tables like [model] and options like [--tta], which rich would eat as markup
    err_console.print(f"[red]error:[/red] {escape(cli_words(message))}", highlight=False, soft_wrap=True)
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


def check_owned(path: Path, name: str, what: str | None = None) -> None:
    """Before `--overwrite` deletes the existing `path` (a folder or store): refuse (exit 2) unless unet_zoo
    created it (`unet_zoo.utils.files.check_replaceable`; `what`: the kind of output it must be) or it is empty."""
    try:
        check_replaceable(path, what=what)
    except FileExistsError as err:
        raise fail(f"{name}: {err}") from None


@contextmanager
def outputs_as_one_unit(out: Path) -> Iterator[None]:
    """Write a command's output files as one unit (`unet_zoo.utils.files.all_or_nothing`): when writing fails
    (a full disk) or the run stops, the files it created are removed, so the same command can simply run again.
    A write error is the one-line red error, exit 2."""
    try:
        with all_or_nothing():
            yield
    except OSError as err:
        where = err.filename or out
        raise fail(
            f"cannot write {where}: {err.strerror or err}; the files this run had written to {out} were removed "
            "(none is left half written): make room and run the same command again"
        ) from None
