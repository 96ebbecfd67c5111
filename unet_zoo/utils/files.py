"""Small file helpers shared across unet_zoo (standard library only): sha256 digests, atomic writes, and
where things live (the user cache folder, the source checkout the package runs from).

Atomic writes go to a temporary file in the destination's folder, are fsynced, and are then moved into
place with `os.replace`, so a kill or a crash never leaves a half-written (or empty) file under `path`:
readers see either the old file or the complete new one. `staging_folder` and `publish_folder` do the
same for a whole folder (a checkpoint folder is built beside its destination, then renamed into place).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

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


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], object], suffix: str = ".tmp") -> Path:
    """Create `path` atomically: `write(tmp)` fills a temporary file in the same folder, which is fsynced and
    moved onto `path` with `os.replace`; on any error the temporary file is removed. Returns `path`.

    `suffix` ends the temporary file's name (for writers that look at it, e.g. ``np.save`` wants ``.npy``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:  # on disk before the rename, so a crash cannot leave an empty file under `path`
            os.fsync(f.fileno())
        os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp makes it private (0600); give it the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (str is encoded as UTF-8) to `path` atomically (see `atomic_write_with`); returns `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(payload))


def staging_folder(target: str | Path) -> Path:
    """A new empty folder beside `target` (same file system) to build its contents in, for `publish_folder`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(folder, _NEW_FOLDER_MODE)  # mkdtemp makes it 0700; a published folder gets the usual mode
    return folder


def publish_folder(staging: str | Path, target: str | Path, *, overwrite: bool = False) -> Path:
    """Move the finished folder `staging` to `target` by renaming; returns `target`.

    Readers see the old folder or the complete new one, never a mixture. An existing `target` is replaced
    only with `overwrite` (else FileExistsError, and `staging` is left for the caller to remove).
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return target
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


__all__ = [
    "atomic_write_bytes",
    "atomic_write_with",
    "cache_dir",
    "file_sha256",
    "files_sha256",
    "publish_folder",
    "source_checkout_root",
    "staging_folder",
]
