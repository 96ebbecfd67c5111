"""Read the code blocks of README.md, docs/*.md and studies/README.md, run them, or check their `unet-zoo` lines
against the real CLI.

Used by tests/test_docs.py. Every block stands on its own, as a reader copies it: it runs in a fresh
temporary folder that reads like the repository root (``../shared`` links to the checkout's ``../shared``, so
that ``../shared/data/isbi2012`` means what it means there; ``cards``, ``recipes``, ``benchmarks`` and ``studies`` link to
the checkout's), Python blocks in a fresh namespace, shell blocks with ``bash -euo pipefail`` and this
checkout's `unet-zoo` on PATH. An HTML comment on the line before a block changes how it is tested:

- ``<!-- docs-test: parse-only (why) -->``: the block is not run (it trains for hours, installs packages, ...);
  instead every ``unet-zoo ...`` command in it must parse against the CLI (each option exists, each value has
  its type), every ``python path/script.py --option`` must name an existing script that defines the option,
  every ``bash path.sh`` an existing script and every ``pip install ".[extra]"`` an extra of pyproject.toml.
- ``<!-- docs-test: slow (why) -->``: the block runs, but only in the full test set (``pytest.mark.slow``).

Bash blocks are always slow (each `unet-zoo` call starts a Python process that imports torch).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
RUN_LANGUAGES = {"python", "bash", "sh", "console"}
KNOWN_LANGUAGES = RUN_LANGUAGES | {"text", "toml", "bibtex", "json", "yaml"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(parse-only|slow)\s*\((.+)\)\s*-->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass
class Block:
    """One fenced code block: its page, the line of its opening fence (1-based), language, code and marker."""

    page: Path
    line: int
    language: str
    code: str
    mode: str = "run"  # "run", "slow" or "parse-only"
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO_ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md, every docs/*.md and the studies' README."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "studies" / "README.md"]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of one Markdown page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        code = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end])
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        mode, reason = (marker.group(1), marker.group(2)) if marker else ("run", "")
        found.append(Block(page, i + 1, language, code + "\n", mode, reason))
        i = end + 1
    return found


# ---- running a block ---------------------------------------------------------------------------------------


LINKED = ("cards", "recipes", "benchmarks", "studies")
"""Folders of the checkout that blocks name relative to the repository root; linked into the working folder."""


def page_workdir(base: Path) -> Path:
    """A working folder `base/work` that reads like the repository root: `base/shared` links to the checkout's
    ../shared (when it exists) and `work/cards`, `work/recipes`, `work/benchmarks`, `work/studies` to the checkout's folders."""
    work = base / "work"
    work.mkdir(parents=True, exist_ok=True)
    if SHARED.is_dir() and not (base / "shared").exists():
        (base / "shared").symlink_to(SHARED, target_is_directory=True)
    for name in LINKED:
        if not (work / name).exists():
            (work / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    return work


def shim_dir(base: Path) -> Path:
    """A folder holding a `unet-zoo` script that runs this checkout's CLI (``python -m unet_zoo``)."""
    folder = base / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "unet-zoo"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m unet_zoo "$@"\n')
    script.chmod(0o755)
    for name in ("python", "python3"):
        link = folder / name
        if not link.exists():
            link.symlink_to(sys.executable)
    return folder


def block_env(workdir: Path) -> dict[str, str]:
    """The environment of a bash block: this checkout first on PYTHONPATH and `unet-zoo` on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(shim_dir(workdir.parent)), env.get("PATH", "")))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def run_block(block: Block, workdir: Path, namespace: dict, timeout: float = 600) -> None:
    """Run one block in `workdir`: Python with exec in `namespace`, shell blocks with ``bash -euo pipefail``."""
    if block.language == "python":
        code = compile(block.code, block.id, "exec")
        before = os.getcwd()
        os.chdir(workdir)
        try:
            exec(code, namespace)  # noqa: S102  the documentation's own code, which is what is tested
        finally:
            os.chdir(before)
        return
    script = "\n".join(line[2:] if line.startswith("$ ") else line for line in block.code.splitlines())
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        env=block_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise AssertionError(f"{block.id}: exit code {done.returncode}\n{tail}")


# ---- parse-only checks ------------------------------------------------------------------------------------


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block: continuation lines joined, comments, redirections and `VAR=x` dropped."""
    text = code.replace("\\\n", " ")
    found: list[list[str]] = []
    for line in text.splitlines():
        line = re.sub(r"(?<!\S)\d(?=>)", "", line)  # 2>&1, 2> file: the descriptor goes with its redirection
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        skip_next = False
        for token in lexer:
            if skip_next:
                skip_next = False
            elif token in (";", "&&", "||", "|", "&"):
                found.append(words)
                words = []
            elif token in (">", ">>", "<", ">&", "&>"):
                skip_next = True
            elif not words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
                continue
            else:
                words.append(token)
        found.append(words)
    return [words for words in found if words]


def _click():
    """The click that typer builds the CLI with (typer >= 0.29 vendors its own as typer._click)."""
    try:
        import typer._click as click  # type: ignore[import-not-found]
    except ImportError:
        import click
    return click


def _cli():
    import typer.main

    from unet_zoo.cli import app

    return typer.main.get_command(app)


def parse_cli(args: list[str]) -> None:
    """Parse `unet-zoo ARGS` with the real CLI, down to the command, without running it; raises click's error."""
    command = _cli()
    ctx = command.make_context("unet-zoo", list(args))
    try:
        while hasattr(command, "resolve_command"):  # a group of commands
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return
            name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None and name is not None, f"no command in {args}"
            command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    except Exception as err:
        if type(err).__name__ != "Exit":  # --help exits early: the line parsed
            raise


def _extras() -> set[str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"].get("optional-dependencies", {}))


def check_no_renamed_option(args: list[str]) -> None:
    """Docs use today's option names: an old name that still works with a warning (`unet_zoo.cli.options.RENAMED`)
    is an AssertionError."""
    from unet_zoo.cli.help import renamed
    from unet_zoo.cli.options import RENAMED

    for command in RENAMED:
        words = command.split()
        if args[: len(words)] == words:
            _, warnings = renamed(command, args[len(words) :], set())
            assert not warnings, f"`unet-zoo {shlex.join(args)}`: {warnings[0]}"


def check_command(words: list[str]) -> str | None:
    """Check one command without running it; returns what it is, or raises AssertionError saying what is wrong."""
    click = _click()

    for i, word in enumerate(words):
        tail = words[i + 1 :]
        if word == "unet-zoo" or (word == "unet_zoo" and i > 0 and words[i - 1] == "-m"):
            try:
                parse_cli(tail)
            except click.exceptions.ClickException as err:
                raise AssertionError(f"`unet-zoo {shlex.join(tail)}` does not parse: {err.format_message()}") from None
            check_no_renamed_option(tail)
            return "unet-zoo"
        if word == "install" and i > 0 and words[i - 1] == "pip":
            for spec in tail:
                extras = re.search(r"\[(.+)\]", spec)
                if spec.startswith(".") and extras:
                    unknown = set(extras.group(1).split(",")) - _extras()
                    assert not unknown, f"pip install {spec}: no extra {', '.join(sorted(unknown))} in pyproject.toml"
            return "pip"
        if word.endswith((".py", ".sh")) and not word.startswith("-"):
            script = REPO_ROOT / word
            assert script.is_file(), f"{word}: no such script in the repository"
            source = script.read_text(encoding="utf-8")
            for option in (t.split("=")[0] for t in tail if t.startswith("--") and word.endswith(".py")):
                assert f'"{option}"' in source or f"'{option}'" in source, f"{word} defines no option {option}"
            return "script"
    return None


def check_python(code: str, name: str = "<block>") -> int:
    """Compile a Python block and resolve every ``unet_zoo...`` name it imports or uses, without running it.

    Returns how many names were resolved; raises AssertionError naming one that does not exist.
    """
    import ast
    import importlib

    tree = ast.parse(compile(code, name, "exec", flags=ast.PyCF_ONLY_AST))
    checked = 0

    def resolve(dotted: str) -> None:
        parts = dotted.split(".")
        obj = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], start=1):
            if not hasattr(obj, part):
                try:
                    obj = importlib.import_module(".".join(parts[: i + 1]))
                    continue
                except ImportError:
                    raise AssertionError(f"{name}: {dotted} does not exist ({'.'.join(parts[:i])} has no {part})") from None
            obj = getattr(obj, part)

    def dotted_name(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            base = dotted_name(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "unet_zoo":
            for alias in node.names:
                resolve(f"{node.module}.{alias.name}")
                checked += 1
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "unet_zoo":
                    resolve(alias.name)
                    checked += 1
        elif isinstance(node, ast.Attribute) and not isinstance(getattr(node, "parent", None), ast.Attribute):
            dotted = dotted_name(node)
            if dotted and dotted.split(".")[0] == "unet_zoo":
                resolve(dotted)
                checked += 1
    return checked


def check_block(block: Block) -> int:
    """Check every command of a parse-only block (shell) or every unet_zoo name (Python); returns how many."""
    if block.language == "python":
        return check_python(block.code, block.id)
    return sum(check_command(words) is not None for words in commands(block.code))
