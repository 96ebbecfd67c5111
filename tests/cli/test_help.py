"""Help texts reach the user as written: rich must not take brackets such as `pip install "unet-zoo[export]"`
or `[model]` for markup and drop them; flags show no value placeholder and arguments show their names."""

from __future__ import annotations

import re

import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

from unet_zoo.cli import app

runner = CliRunner()


def _commands(group, path: tuple[str, ...] = ()):
    """(path, command) of every command below `group`, sub-groups included (typer 0.29 vendors its own click, so
    a group is whatever has sub-commands, not a click.Group)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield (*path, name), command
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


HELP_PATHS = [(), *(path for path, _ in COMMANDS)]


@pytest.mark.parametrize("path", HELP_PATHS, ids=[" ".join(p) or "unet-zoo" for p in HELP_PATHS])
def test_help_shows_flags_without_a_value_and_arguments_by_name(path):
    root = typer.main.get_command(app)
    command = root
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    context = command.make_context(" ".join(["unet-zoo", *path]), [], resilient_parsing=True)
    params = command.get_params(context)
    assert any(p.opts == ["--help"] for p in params)
    for param in params:
        if getattr(param, "param_type_name", "") == "argument":
            name = (param.metavar or param.name).upper()
            assert re.search(rf"\b{re.escape(name)}\b", usage), f"{name} missing from {usage!r}"
        elif param.is_flag or param.count:
            for opt in [*param.opts, *param.secondary_opts]:
                # the option column, then (for a value option) its placeholder: a flag has none
                shown = re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])[ ,]*(-\w\b)?[ ,]*(\S*)", text)
                assert shown is not None, f"{opt} missing from the help of unet-zoo {' '.join(path)}"
                after = shown.group(2)
                assert not after.startswith("<") and not re.fullmatch(r"[A-Z][A-Z_|]+", after), (
                    f"unet-zoo {' '.join(path)}: the flag {opt} is shown with a value placeholder {after!r}"
                )


def test_a_value_option_keeps_its_placeholder():
    """The check above can fail: an option that takes a value is shown with one."""
    result = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert re.search(r"--tile\s+<int>", result.output) and re.search(r"--tta\s+average", result.output)
