"""Small file helpers shared across unet_zoo (standard library only): sha256 digests, atomic writes, and
where things live (the user cache folder, the source checkout the package runs from).

Atomic writes go to a temporary file in the destination's folder, are fsynced, and are then moved into
place with `os.replace`, so a kill or a crash never leaves a half-written (or empty) file under `path`:
readers see either the old file or the complete new one. `staging_folder` and `publish_folder` do the
same for a whole folder (a checkpoint folder is built beside its destination, then renamed into place).

Ownership: every folder or Zarr store unet_zoo creates as an output holds a small marker file
(`OWNER_FILE`, written by `mark_owned`). `check_replaceable` is the one check every ``--overwrite`` goes
through: only an empty folder or one holding the marker is ever deleted, so a user's own folder or store
that happens to sit at an output path is never removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from unet_zoo.utils.errors import InputError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
"""The folder of the installed (or checked-out) unet_zoo package."""


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/unet_zoo/<parts...>`` (``~/.cache/unet_zoo/...`` when XDG_CACHE_HOME is unset or empty).

    Only builds the path; it does not create the folder.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "unet_zoo", *parts)


def source_checkout_root() -> Path | None:
    """The root of the source checkout this package runs from (the folder holding pyproject.toml next to
    ``unet_zoo/``), or None when unet_zoo is installed (no pyproject.toml beside the package)."""
    root = PACKAGE_ROOT.parent
    if (root / "pyproject.toml").is_file() and (root / PACKAGE_ROOT.name / "__init__.py").is_file():
        return root
    return None


def files_sha256(paths: Iterable[str | Path], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of `paths` concatenated in the given order (``cat paths... | sha256sum``)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of one file."""
    return files_sha256([path], chunk_size)


def _default_file_mode() -> int:
    """0o666 less this process's umask: the mode `open(path, "w")` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_NEW_FILE_MODE = _default_file_mode()  # read once at import: os.umask can only be read by setting it
_NEW_FOLDER_MODE = _NEW_FILE_MODE | ((_NEW_FILE_MODE & 0o444) >> 2)  # + x wherever r: what os.mkdir gives


def _temporary_prefix(target: Path) -> str:
    """Name prefix of this process's temporary files for `target`: hidden, and saying who writes them."""
    return f".{target.name}.unet_zoo-{socket.gethostname()}-{os.getpid()}."


def _writer_is_gone(name: str, target: Path) -> bool:
    """True when `name` is a temporary file or folder for `target` left by a process of this host that has ended."""
    head = f".{target.name}.unet_zoo-{socket.gethostname()}-"
    if not name.startswith(head):
        return False  # not ours, or written on another host (whose processes this host cannot see)
    pid = name[len(head) :].split(".", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive but not ours to signal
        return False
    return False


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Delete the temporary files and folders a killed writer left beside `target`; returns what was removed.

    Only names made by `atomic_write_with` / `staging_folder` for `target` on this host whose process has
    ended are removed, so a write still running elsewhere is never disturbed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for entry in target.parent.iterdir():
        if _writer_is_gone(entry.name, target):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def give_default_mode(path: str | Path, *, folder: bool = False) -> None:
    """Give `path` the mode a plain ``open(path, "w")`` (or ``os.mkdir`` with `folder`) would under this umask.

    For files made by tempfile or by libraries that create them private (0600), before publishing them.
    """
    os.chmod(path, _NEW_FOLDER_MODE if folder else _NEW_FILE_MODE)


def move_into_place(tmp: str | Path, path: str | Path) -> Path:
    """Publish the finished file `tmp` as `path`: fsync it, give it the default mode, `os.replace` it; returns `path`."""
    with open(tmp, "rb") as f:  # on disk before the rename, so a crash cannot leave an empty file under `path`
        os.fsync(f.fileno())
    give_default_mode(tmp)
    os.replace(tmp, path)
    return Path(path)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], object], suffix: str = ".tmp") -> Path:
    """Create `path` atomically: `write(tmp)` fills a temporary file in the same folder, which is fsynced and
    moved onto `path` with `os.replace`; on any error the temporary file is removed. Returns `path`.

    The file gets the mode a plain `open()` gives. Temporary files that a killed earlier writer left beside
    `path` are removed first (see `remove_stale_temporaries`).
    `suffix` ends the temporary file's name (for writers that look at it, e.g. ``np.save`` wants ``.npy``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=suffix)
    os.close(fd)
    new = not path.exists()
    try:
        write(tmp)
        move_into_place(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    created = _created.get()
    if new and created is not None:
        created.append(path)
    return path


_created: ContextVar[list[Path] | None] = ContextVar("unet_zoo_created_files", default=None)


@contextmanager
def all_or_nothing() -> Iterator[list[Path]]:
    """Treat the files written in the block as one unit: if the block raises (a full disk, a bad input, Ctrl-C),
    the files it created with `atomic_write_with` (paths that did not exist before) are removed again.

    Yields the list of created paths. Each file is written atomically anyway; this keeps a failed run from
    leaving some of its outputs behind, which would make the same command refuse to run again. Files that
    existed before the block (replaced with an overwrite option) are not touched.
    """
    created: list[Path] = []
    outer = _created.get()
    token = _created.set(created)
    try:
        yield created
    except BaseException:
        for path in reversed(created):
            path.unlink(missing_ok=True)
        raise
    finally:
        _created.reset(token)
    if outer is not None:  # nested: the enclosing unit takes them back too if it fails later
        outer.extend(created)


def atomic_write_bytes(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (str is encoded as UTF-8) to `path` atomically (see `atomic_write_with`); returns `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(payload))


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_path(
    path: str | os.PathLike[str],
    *,
    folder: bool = False,
    contents: Iterable[str] = (),
    overwrite: bool = False,
    overwrite_hint: str = "pass overwrite=True to replace it",
) -> Path:
    """Check, before any work starts, that the output `path` can be written; returns it (``~`` expanded).

    `path` is a file, or with `folder` a folder into which the files named `contents` will go. Raises
    (all OSError subclasses, each with a message saying what to do):

    - NotADirectoryError: an ancestor of `path` is a file, or `path` is an existing file where a folder is wanted;
    - IsADirectoryError: `path` (or one of `contents`) is an existing folder where a file is wanted;
    - PermissionError: the nearest existing folder cannot be written (tried by creating and deleting a file);
    - FileExistsError: the file (or one of `contents`) exists and `overwrite` is false (`overwrite_hint` says how).

    Nothing is created: folders that do not exist yet are made by the writer.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is an existing file, but a folder is expected here; pick another path")
    place = _nearest_existing(path if folder else path.parent)
    if not place.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {place} is a file, not a folder; pick another path")
    targets = [path / name for name in contents] if folder else [path]
    for target in targets:
        if target.is_dir():
            raise IsADirectoryError(f"{target} is an existing folder, but a file is expected here; give a file name")
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; {overwrite_hint}")
    try:
        fd, probe = tempfile.mkstemp(dir=place, prefix=".unet_zoo-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise PermissionError(f"cannot write {path}: {place} is not writable ({reason}); pick another path") from None
    return path


OWNER_FILE = ".unet_zoo-output.json"
"""The marker file unet_zoo writes into every output folder or store it creates (see `check_replaceable`)."""


def mark_owned(folder: str | Path, what: str) -> Path:
    """Record in the existing `folder` that unet_zoo created it, as `what` (e.g. "volume probabilities"); returns it."""
    folder = Path(folder)
    record = {"written_by": "unet_zoo", "what": what}
    atomic_write_bytes(folder / OWNER_FILE, json.dumps(record) + "\n")
    return folder


def owner_record(folder: str | Path) -> dict | None:
    """What `mark_owned` recorded in `folder` ({"written_by": "unet_zoo", "what": ...}), or None (not ours)."""
    marker = Path(folder) / OWNER_FILE
    if Path(folder).is_symlink() or not marker.is_file() or marker.is_symlink():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("written_by") == "unet_zoo" else None


def check_replaceable(path: str | Path, *, what: str | None = None) -> None:
    """Raise FileExistsError unless the existing `path` may be deleted to be replaced: an empty folder, or a
    folder (or Zarr store) unet_zoo marked as its own (`mark_owned`; with `what`, as that kind of output).

    A missing `path` passes. The message names the path and says what to do (remove it yourself, or choose
    another path); the caller adds the option's name.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        if not any(path.iterdir()):
            return
        record = owner_record(path)
        if record is not None and (what is None or record.get("what") == what):
            return
        if record is not None:
            raise FileExistsError(
                f"{path} holds unet_zoo's {record.get('what')}, not {what}; it is not replaced: "
                "choose another path, or remove it yourself first"
            )
    kind = "folder" if path.is_dir() else "file"
    raise FileExistsError(
        f"{path} is an existing {kind} that unet_zoo did not create; it is never deleted: "
        "choose another path, or remove it yourself first"
    )


def read_folder_file(folder: str | Path, name: str, *, what: str = "file") -> bytes:
    """The bytes of the regular file `name` directly inside `folder`; InputError for anything else.

    A symlink (even one pointing inside `folder`), a name that leaves the folder (``../x``, an absolute path)
    or something that is not a regular file is refused, so nothing outside a model folder is ever read (and
    packed into an export) because the folder points at it. `what` names the file in messages ("model card").
    """
    folder = Path(folder)
    path = folder / name
    if Path(name).is_absolute() or len(Path(name).parts) != 1 or name in (".", ".."):
        raise InputError(f"{what} {name!r} of {folder} is not a plain file name inside the folder; it is not read")
    if path.is_symlink():
        raise InputError(
            f"{what} {path} is a symbolic link (to {os.readlink(path)}); unet_zoo reads only regular files inside a "
            "model folder: replace the link with a copy of the file, or remove it"
        )
    if not path.is_file():
        raise InputError(f"{what} {path} is not a regular file; replace it with a file, or remove it")
    if os.path.realpath(path) != os.path.join(os.path.realpath(folder), name):
        raise InputError(f"{what} {path} resolves outside {folder}; copy the file into the folder instead")
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror or err}") from None


def staging_folder(target: str | Path) -> Path:
    """A new empty folder beside `target` (same file system) to build its contents in, for `publish_folder`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    folder = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".partial", dir=target.parent))
    give_default_mode(folder, folder=True)  # mkdtemp makes it 0700; a published folder gets the usual mode
    return folder


def publish_folder(staging: str | Path, target: str | Path, *, overwrite: bool = False, what: str = "folder") -> Path:
    """Move the finished folder `staging` to `target` by renaming; returns `target`.

    The published folder is marked as unet_zoo's (`mark_owned`, as `what`). Readers see the old folder or the
    complete new one, never a mixture. An existing `target` is replaced only with `overwrite`, and only when
    `check_replaceable` allows it (else FileExistsError, and `staging` is left for the caller to remove).
    """
    staging, target = Path(staging), Path(target)
    mark_owned(staging, what)
    if not target.exists():
        os.replace(staging, target)
        return target
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    check_replaceable(target, what=what)
    old = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


__all__ = [
    "OWNER_FILE",
    "all_or_nothing",
    "atomic_write_bytes",
    "atomic_write_with",
    "cache_dir",
    "check_output_path",
    "check_replaceable",
    "file_sha256",
    "files_sha256",
    "give_default_mode",
    "mark_owned",
    "move_into_place",
    "owner_record",
    "publish_folder",
    "read_folder_file",
    "remove_stale_temporaries",
    "source_checkout_root",
    "staging_folder",
]
