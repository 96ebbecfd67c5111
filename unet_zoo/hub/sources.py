"""What a model source names: `parse_source` reads the string given to `unet_zoo.from_pretrained` (and to every
command's MODEL argument) by explicit rules, never by looking around to guess.

The rules, in order:

1. a `pathlib.Path` (any ``os.PathLike``) is a folder;
2. ``hf-hub:owner/repo`` (optionally ``@revision``) is a Hugging Face Hub repo;
3. ``local-dir:PATH`` is a folder;
4. a string written as a path is a folder: absolute (``/x``), ``./x``, ``../x``, ``~/x``, ``.``, or with a
   backslash or two or more slashes (``runs/exp/base``: no Hub id has two);
5. a published checkpoint name (``unet_zoo.list_pretrained()``, e.g. ``isbi-small``) is that checkpoint, with its
   pinned revision and sha256, even where the working directory holds a folder of that name (a warning says so);
6. a registered architecture name (``unet_zoo.list_models()``) is refused: it has no trained weights,
   ``unet_zoo.create_model(name)`` builds it with random ones. Front-ends whose MODEL argument takes architectures
   ask for them explicitly (``allow_architecture=True``), and the loader warns that the weights are random;
7. ``owner/repo`` (optionally ``@revision``) is a Hub repo id, but if a folder of that relative name exists the
   string is refused: write ``./owner/repo`` for the folder or ``hf-hub:owner/repo`` for the Hub;
8. anything else is refused with the names it may have meant.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from unet_zoo.models.checkpoint_names import variant_of
from unet_zoo.models.registry import PRETRAINED, list_models
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import source_checkout_root
from unet_zoo.utils.suggest import did_you_mean

HUB_PREFIX = "hf-hub:"
FOLDER_PREFIX = "local-dir:"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

SourceKind = Literal["registry", "hub", "folder", "architecture"]


class SourceError(InputError):
    """A model source that names nothing loadable, or could name two things; the message says what to write."""


@dataclass(frozen=True)
class ModelSource:
    """A parsed model source: `kind` and `location` (checkpoint name, Hub repo id, folder path or architecture),
    plus the Hub `revision` written after ``@`` (None when none was)."""

    kind: SourceKind
    location: str
    revision: str | None = None

    def text(self) -> str:
        """The source written so that `parse_source` reads it back the same anywhere (a recipe's init_from)."""
        if self.kind == "hub":
            return f"{HUB_PREFIX}{self.location}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "folder" and not is_path_like(self.location):
            return f"./{self.location}"
        return self.location


def source_cards_dir() -> Path | None:
    """The `cards/` folder of a source checkout of unet_zoo (next to its pyproject.toml), or None when installed.

    The folder need not exist yet (a fresh clone before any checkpoint is trained); callers check
    for the checkpoint they want inside it.
    """
    root = source_checkout_root()
    return None if root is None else root / "cards"


def is_path_like(name: str) -> bool:
    """True when `name` is written as a path (rule 4 of `parse_source`): absolute, ``./x``, ``../x``, ``~/x``,
    ``.``, ``..``, a backslash, or two or more slashes. Never looks at the file system."""
    return (
        name in (".", "..")
        or name.startswith(("./", "../", "~", "/"))
        or "\\" in name
        or os.path.isabs(name)
        or name.count("/") >= 2
    )


def _hub(text: str, written: str) -> ModelSource:
    repo_id, _, revision = text.partition("@")
    if not _REPO_ID.match(repo_id) or (_ and not revision):
        raise SourceError(f"{written!r} is not a Hub repo id: write owner/repo, optionally @revision (a branch, tag or commit)")
    return ModelSource("hub", repo_id, revision or None)


def _folder(text: str) -> ModelSource:
    if not text:
        raise SourceError(f"{FOLDER_PREFIX} needs a folder after it, e.g. {FOLDER_PREFIX}./my-model")
    return ModelSource("folder", os.path.expanduser(text))


def unpublished_hint(name: str) -> str:
    """What to do when `name` is a checkpoint trained in this source checkout, or a recipe not published yet."""
    cards = source_cards_dir()
    if cards is not None and (cards / name / "config.json").is_file():
        return (
            f" This source checkout has a checkpoint folder {cards / name}: load it with "
            f"unet_zoo.from_pretrained('./cards/{name}')"
        )
    variant = variant_of(name)
    if variant is None:
        return ""
    return (
        f" The {name!r} checkpoint is not published yet: train it with `unet-zoo reproduce isbi --recipe {name}-cpu` "
        f"(on a CPU, in resumable parts with --time-limit) or `unet-zoo reproduce isbi --variant {variant}` (on a GPU); "
        f"either writes the folder cards/{name}/, which then loads with unet_zoo.from_pretrained('./cards/{name}')"
    )


def parse_source(source: str | os.PathLike[str], *, allow_architecture: bool = False) -> ModelSource:
    """Which model `source` names, by the rules of this module's docstring; SourceError (one line saying what
    to write) when it names nothing loadable or could name both a folder and a Hub repo.

    `allow_architecture` lets a registered architecture name through as kind "architecture" (rule 6), for
    front-ends that build such a model with random weights and say so.
    """
    if isinstance(source, os.PathLike):
        return ModelSource("folder", os.path.expanduser(os.fspath(source)))
    if not isinstance(source, str) or not source.strip():
        raise SourceError(
            f"a model source must be a non-empty string or a Path, got {source!r}: a checkpoint name "
            f"({', '.join(PRETRAINED) or 'none published yet'}), hf-hub:owner/repo or a folder"
        )
    if source.startswith(HUB_PREFIX):
        return _hub(source[len(HUB_PREFIX) :], source)
    if source.startswith(FOLDER_PREFIX):
        return _folder(source[len(FOLDER_PREFIX) :])
    if is_path_like(source):
        return ModelSource("folder", os.path.expanduser(source))
    if source in PRETRAINED:
        return ModelSource("registry", source)
    architectures = list_models()
    if source in architectures:
        if allow_architecture:
            return ModelSource("architecture", source)
        raise SourceError(
            f"{source!r} is an architecture, not a trained checkpoint: unet_zoo.create_model({source!r}) builds it "
            f"with random weights; trained checkpoints: {', '.join(PRETRAINED) or 'none published yet'}"
        )
    if "/" in source:
        parsed = _hub(source, source)
        if os.path.isdir(parsed.location):
            raise SourceError(
                f"{source!r} could be the folder ./{parsed.location} or the Hub repo {parsed.location}: write "
                f"./{source} for the folder or {HUB_PREFIX}{source} for the Hub"
            )
        return parsed
    known = list(PRETRAINED) + (architectures if allow_architecture else [])
    folder = f" For the folder {source!r} here, write ./{source}." if os.path.isdir(source) else ""
    hint = unpublished_hint(source) or did_you_mean(source, known)
    architecture = " or an architecture (unet_zoo.list_models(), random weights)" if allow_architecture else ""
    raise SourceError(
        f"{source!r} is not a published checkpoint ({', '.join(PRETRAINED) or 'none yet'}), a Hub repo id "
        f"(owner/repo, hf-hub:owner/repo), a folder (./path, /path, local-dir:path){architecture}.{folder}{hint}"
    )


__all__ = [
    "FOLDER_PREFIX",
    "HUB_PREFIX",
    "ModelSource",
    "SourceError",
    "SourceKind",
    "is_path_like",
    "parse_source",
    "source_cards_dir",
    "unpublished_hint",
]
