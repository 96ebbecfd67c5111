"""One vocabulary across the `unet-zoo` commands: an option name has one meaning (type, help, short alias) in
every command that takes it, `--json` is always a flag, renamed options keep working for a release with a
warning, and a usage error is one line."""

from __future__ import annotations

import json
import typing
from collections import defaultdict
from pathlib import Path

import pytest
import typer
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from unet_zoo.cli import app
from unet_zoo.cli import options as opt
from unet_zoo.cli.app import ZooTyper
from unet_zoo.cli.help import ReadableGroup, renamed

runner = CliRunner()


def _commands(group, path: tuple[str, ...] = ()):
    """(path, command) of every command and sub-group below `group` (typer 0.29 vendors click: a group is what
    has sub-commands)."""
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def _value_type(option: TyperOption) -> str:
    """The option's value type without Optional: ``int | None`` and ``int`` mean the same on the command line."""
    annotation = option.type_descriptor.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return repr(args[0] if len(args) == 1 and type(None) in typing.get_args(annotation) else annotation)


def drift(root) -> list[str]:
    """Every option name that two commands of `root` give different meanings: a different value type, flag-ness,
    aliases (``-o``), or help text (except the names of `options.PER_COMMAND_HELP`); and every --json that takes
    a value."""
    seen: dict[str, list[tuple[str, TyperOption]]] = defaultdict(list)
    for path, command in _commands(root):
        for param in command.params:
            if isinstance(param, TyperOption):
                seen[max(param.opts, key=len)].append((" ".join(path), param))
    problems = []
    for name, uses in sorted(seen.items()):
        if name == "--json":
            problems += [
                f"{where}: --json takes a value; make it a flag (a path goes to --out)" for where, p in uses if not p.is_flag
            ]
        for what, key in (
            ("value type", _value_type),
            ("flag", lambda p: p.is_flag),
            ("names", lambda p: sorted(p.opts + p.secondary_opts)),
            ("help", lambda p: p.help),
        ):
            if what == "help" and name in opt.PER_COMMAND_HELP:
                continue
            values = {where: key(p) for where, p in uses}
            if len({repr(v) for v in values.values()}) > 1:
                problems.append(f"{name} has different {what}s: {values}")
    return problems


def test_every_option_name_has_one_meaning():
    assert drift(typer.main.get_command(app)) == []


def test_the_check_finds_a_name_with_two_meanings():
    demo = ZooTyper(cls=ReadableGroup)

    @demo.command()
    def predict(block: int = typer.Option(None, "--block", help="volumes: block side (px)"), as_json: opt.Json = False) -> None:
        pass

    @demo.command()
    def segment(
        block: int = typer.Option(None, "--block", help="segment sections larger than this"),
        as_json: Path = typer.Option(None, "--json", help="write JSON here"),
        quiet: str = typer.Option("", "--quiet"),
    ) -> None:
        pass

    @demo.command()
    def other(quiet: opt.Quiet = False) -> None:
        pass

    problems = drift(typer.main.get_command(demo))
    assert any("segment: --json takes a value" in p for p in problems)
    assert any(p.startswith("--block has different helps") for p in problems)
    assert any(p.startswith("--quiet has different value types") for p in problems)
    assert any(p.startswith("--quiet has different names") for p in problems)  # -q is missing in one


def test_every_json_is_a_flag_that_prints_json_on_stdout():
    commands = {" ".join(path): c for path, c in _commands(typer.main.get_command(app))}
    with_json = [path for path, c in commands.items() if any("--json" in getattr(p, "opts", []) for p in c.params)]
    assert {"list", "info", "data info", "evaluate"} <= set(with_json)
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0 and isinstance(json.loads(result.stdout), list)


def test_json_keeps_stdout_for_the_json_when_a_command_also_fails(tmp_path):
    """`data info --json` on a folder without the data: the JSON on stdout, the error line on stderr, exit 1."""
    result = runner.invoke(app, ["data", "info", "--json", "--no-checksums", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ready"] is False
    assert result.stderr.startswith("error:")


# --- usage errors --------------------------------------------------------------------------------------------

USAGE_ERRORS = [
    (["predict", "small", "a.tif", "--no-such-option"], ["--no-such-option", "unet-zoo predict --help"]),
    (["predict"], ["MODEL", "unet-zoo predict --help"]),
    (["predict", "small", "a.tif", "--tile", "big"], ["--tile", "big"]),
    (["predict", "small", "a.tif", "--precision", "fp8"], ["--precision", "fp8", "auto, bf16, fp32"]),
    (["segment", "small", "a.tif", "--backend", "tensorrt"], ["--backend", "tensorrt"]),
    (["predict", "small", "a.tif", "--device", "gpu7"], ["--device", "gpu7"]),
    (["predict", "small", "a.tif", "--threshold", "2"], ["--threshold", "[0, 1]"]),
    (["predict", "small", "a.tif", "--pixel-size", "inf"], ["--pixel-size"]),
    (["predict", "small", "a.tif", "--batch-size", "0"], ["--batch-size"]),
    (["no-such-command"], ["no-such-command", "unet-zoo --help"]),
    (["data", "download", "isbi", "--bogus"], ["--bogus", "unet-zoo data download --help"]),
    (["export", "small", "--out", "m.onnx"], ["--format"]),
]


@pytest.mark.parametrize(("args", "words"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line(args, words):
    result = runner.invoke(app, args, prog_name="unet-zoo")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output and result.stdout == ""
    for word in words:
        assert word in lines[0], lines[0]


def test_a_usage_error_in_a_real_process_is_one_line():
    """What a shell sees (typer's standalone mode, not the test runner)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "unet_zoo", "predict", "small", "a.tif", "--tiel", "64"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "--tiel" in result.stderr, result.stderr


# --- renamed options -----------------------------------------------------------------------------------------


def test_renamed_options_name_options_that_exist():
    commands = {" ".join(path): c for path, c in _commands(typer.main.get_command(app))}
    for command, names in opt.RENAMED.items():
        declared = {o for p in commands[command].params for o in getattr(p, "opts", [])}
        for old, new in names.items():
            assert new in declared, f"{command}: {old} is renamed to {new}, which it does not take"
            if (command, old) not in opt.RENAMED_WITH_VALUE:
                assert old not in declared, f"{command}: {old} is both renamed and still declared"


def test_renaming_leaves_values_and_other_commands_alone():
    args, warnings = renamed("export", ["m", "--message", "--force", "--force", "--", "--force"], {"--message"})
    assert args == ["m", "--message", "--force", "--overwrite", "--", "--force"] and len(warnings) == 1
    assert renamed("predict", ["m", "a.zarr", "--block", "64"], set()) == (["m", "a.zarr", "--block", "64"], [])
    assert renamed("evaluate", ["m", "--json"], set()) == (["m", "--json"], [])
    args, warnings = renamed("evaluate", ["m", "--json", "s.json"], set())
    assert args == ["m", "--out", "s.json"] and "--out PATH" in warnings[0]
    assert renamed("segment", ["m", "v.zarr", "--block=64"], set())[0] == ["m", "v.zarr", "--segment-block=64"]


def test_force_still_replaces_an_export_with_a_warning(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"old")
    args = ["export", "small", "--format", "torchscript", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 2 and out.read_bytes() == b"old"
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--force" in warnings[0] and "--overwrite" in warnings[0]
    assert out.read_bytes() != b"old"


OLD_NAMES = [
    ("hub", "download", ["download", "isbi-small", "--force"], "force_download", True),
    ("data", "download_isbi", ["data", "download", "isbi", "--data-dir", "{tmp}", "--force"], "force", True),
    ("segment", "_segment_volume_command", ["segment", "default", "p.zarr", "--out", "s.zarr", "--block", "64"], "block", 64),
]


@pytest.mark.parametrize(("module", "function", "args", "key", "value"), OLD_NAMES, ids=[" ".join(c[2][:2]) for c in OLD_NAMES])
def test_old_names_reach_the_new_options(module, function, args, key, value, tmp_path, monkeypatch):
    """`--force` of download and data download, `--block` of segment: the value reaches the renamed option."""
    import importlib

    seen = {}

    def spy(*_args, **kwargs):
        seen.update(kwargs)
        raise typer.Exit(0)

    monkeypatch.setattr(importlib.import_module(f"unet_zoo.cli.{module}"), function, spy)
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 0, result.output
    assert seen.get(key) == value, seen
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "deprecated" in warnings[0], result.stderr
