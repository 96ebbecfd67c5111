"""How `--help` reads: flags without a value placeholder, arguments by their names in capitals.

typer 0.29 renders a type after every option (``--tta <bool>``, ``--help <bool>``), although a flag takes no
value, and shows required arguments as ``{model}`` in the usage line. `ReadableGroup` is the application's group
class: it gives every command, sub-group and parameter below it the classes here, which render ``--tta``,
``MODEL`` and ``IMAGES...`` instead (older typer releases, which render them so already, are unaffected).
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _element_type(label: str) -> str:
    """``<list[Path]>`` -> ``<path>``: the "..." after a repeated argument's name already says it is a list."""
    found = re.fullmatch(r"<list\[(.*)\]>", label)
    return f"<{found.group(1).lower()}>" if found else label


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
    """A command whose parameters, the help option included, are `ReadableOption` / `ReadableArgument`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable_params(super().get_params(ctx))


class ReadableGroup(TyperGroup):
    """The group class of the `unet-zoo` application: makes every command and group below it readable."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _make_readable(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _readable_params(super().get_params(ctx))


def _make_readable(group: TyperGroup) -> None:
    for command in getattr(group, "commands", {}).values():
        if type(command) is TyperGroup:
            command.__class__ = ReadableGroup
            _make_readable(command)
        elif type(command) is TyperCommand:
            command.__class__ = ReadableCommand


__all__ = ["ReadableArgument", "ReadableCommand", "ReadableGroup", "ReadableOption"]
