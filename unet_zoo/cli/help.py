"""How the command line reads: `--help`, usage errors and renamed options.

`ReadableGroup` is the application's group class: it gives every command, sub-group and parameter below it
the classes here.

- Help: typer 0.29 renders a type after every option (``--tta <bool>``, ``--help <bool>``), although a flag
  takes no value, and shows required arguments as ``{model}`` in the usage line; the classes here render
  ``--tta``, ``MODEL`` and ``IMAGES...`` instead (older typer releases, which render them so already, are
  unaffected).
- Usage errors (an unknown option or command, a bad value, a missing argument) are one red ``error:`` line
  naming the option and where to read more, exit 2, where typer draws a box of several lines.
- Renamed options (`unet_zoo.cli.options.RENAMED`): the old name is read as the new one, with a one-line
  warning on stderr.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from typer import Abort
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from unet_zoo.cli.options import RENAMED, RENAMED_WITH_VALUE

try:  # typer >= 0.29 vendors its own click
    from typer._click.exceptions import BadParameter, MissingParameter, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover  older typer: click itself
    from click.exceptions import BadParameter, MissingParameter, NoArgsIsHelpError, UsageError  # type: ignore[assignment]


def _element_type(label: str) -> str:
    """``<list[Path]>`` -> ``<path>``: the "..." after a repeated argument's name already says it is a list."""
    found = re.fullmatch(r"<list\[(.*)\]>", label)
    return f"<{found.group(1).lower()}>" if found else label


_USAGE_ERRORS = Console(stderr=True)


def command_name(ctx: Any) -> str:
    """The command of `ctx` without the program name: "predict", "data download"."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def _given_value(err: BadParameter) -> Any:
    """The value a type conversion refused (typer keeps it in the validation error behind `err`), else None."""
    errors = getattr(err.__cause__, "errors", None)
    try:
        return errors()[0]["input"] if callable(errors) else None
    except (IndexError, KeyError, TypeError):
        return None


def usage_error_line(err: UsageError) -> str:
    """A usage error (unknown option, bad value, missing argument) as one line: what was wrong, where to look."""
    message = err.format_message()
    if isinstance(err, BadParameter) and not isinstance(err, MissingParameter) and err.param is not None:
        option = max(err.param.opts, key=len) if getattr(err.param, "opts", None) else err.param.get_error_hint()
        text = str(err.message)
        given = _given_value(err)
        text = f"{text[:1].lower()}{text[1:].rstrip('.')}" + (f", got {given!r}" if given is not None else "")
        message = text if text.startswith(option) else f"{option}: {text}"
    message = re.sub(r"\s*\n\s*", " ", message).strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    path = err.ctx.command_path if err.ctx is not None else "unet-zoo"
    return f"{message}; see `{path} --help`"


def renamed(command: str, args: list[str], takes_value: set[str]) -> tuple[list[str], list[str]]:
    """`args` of `command` with renamed option names (`unet_zoo.cli.options.RENAMED`) replaced by the new ones,
    and one warning per replaced name. `takes_value`: the command's options that take a value (their values are
    left alone)."""
    names = RENAMED.get(command, {})
    out: list[str] = []
    warnings: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip or arg == "--":
            skip = False
            out.append(arg)
            if arg == "--":
                return out + args[i + 1 :], warnings
            continue
        name, eq, value = arg.partition("=")
        if name in names:
            suffix = RENAMED_WITH_VALUE.get((command, name))
            given = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            if suffix is None or given.endswith(suffix):
                new = names[name]
                shown = f"{name} {'PATH' if suffix else ''}".strip()
                warnings.append(
                    f"{command} {shown} is deprecated and goes in the next release; use {new}{' PATH' if suffix else ''}"
                )
                arg = new + eq + value
        out.append(arg)
        skip = not eq and arg in takes_value
    return out, warnings


class ReadableOption(TyperOption):
    """An option whose help shows a value placeholder only when it takes a value."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        shown = super().display_type_rich(ctx)
        return None if shown is None else _element_type(shown)


class ReadableArgument(TyperArgument):
    """An argument shown by its name in capitals: ``MODEL``, ``IMAGES...``, ``[OUT]`` when optional."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        return None if shown is None else _element_type(shown)


def _readable_params(params: list[Any]) -> list[Any]:
    """`params` with typer's option and argument classes replaced by the readable ones (the same objects)."""
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = ReadableOption
        elif type(param) is TyperArgument:
            param.__class__ = ReadableArgument
    return params


class ReadableCommand(TyperCommand):
    """A command whose parameters, the help option included, are `ReadableOption` / `ReadableArgument`, and which
    takes its renamed options' old names with a warning."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable_params(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {o for p in self.params if isinstance(p, TyperOption) and not p.is_flag for o in p.opts}
        args, warnings = renamed(command_name(ctx), list(args), takes_value)
        for warning in warnings:
            _USAGE_ERRORS.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
        return super().parse_args(ctx, args)


class ReadableGroup(TyperGroup):
    """The group class of the `unet-zoo` application: makes every command and group below it readable, and prints
    a usage error (unknown option or command, bad value, missing argument) as one red ``error:`` line, exit 2."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _make_readable(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable_params(super().get_params(ctx))

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:  # typer's own handling draws a box of several lines around a usage error
            result = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except NoArgsIsHelpError:  # `unet-zoo` alone: the help, as typer shows it
            return super().main(*args, standalone_mode=True, **kwargs)  # type: ignore[misc]
        except UsageError as err:
            _USAGE_ERRORS.print(f"[red]error:[/red] {escape(usage_error_line(err))}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)
        except Abort:
            _USAGE_ERRORS.print("Aborted.")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)  # an int: the code of a typer.Exit raised by a command


def _make_readable(group: TyperGroup) -> None:
    for command in getattr(group, "commands", {}).values():
        if type(command) is TyperGroup:
            command.__class__ = ReadableGroup
            _make_readable(command)
        elif type(command) is TyperCommand:
            command.__class__ = ReadableCommand


__all__ = ["ReadableArgument", "ReadableCommand", "ReadableGroup", "ReadableOption", "renamed", "usage_error_line"]
