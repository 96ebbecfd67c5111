"""Help texts reach the user as written: rich must not take brackets such as `pip install "unet-zoo[export]"`
or `[model]` for markup and drop them (issue 23, item 11)."""

from __future__ import annotations

import click
import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

from unet_zoo.cli import app

runner = CliRunner()


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))  # type: ignore[arg-type]


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_help_text_loses_text_to_rich_markup(path, command):
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        intended = text.replace("\\[", "[")
        assert Text.from_markup(text).plain == intended, f"unet-zoo {' '.join(path)}: rich eats part of {text!r}"


def test_predict_help_shows_the_export_extra():
    result = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and 'pip install "unet-zoo[export]"' in result.output
