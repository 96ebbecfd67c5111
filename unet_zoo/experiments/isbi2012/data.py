"""The ISBI 2012 EM segmentation data: find, validate, load and download it; registered as the recipes' data
source ``"isbi2012"`` (`unet_zoo.data.sources`).

The set is three multi-page TIFF stacks of 30 sections, 512 x 512 pixels, uint8
(Cardona et al. 2010; Arganda-Carreras et al. 2015):

=================  ===========================================================
train-volume.tif   raw EM, the 30 labelled training sections
train-labels.tif   255 = cell (inside a neurite), 0 = membrane
test-volume.tif    raw EM, 30 test sections whose labels were never released
=================  ===========================================================

The folder is, in this order: the `data_dir` argument (``--data-dir``), the environment variable
``UNET_ZOO_DATA_DIR``, else ``$XDG_CACHE_HOME/unet_zoo/isbi2012`` (``~/.cache/unet_zoo/isbi2012``).
`load_isbi` maps labels to 1 = cell, 0 = membrane. The experiment holds out a contiguous block of slices
(`unet_zoo.data.split.split_slices`: fold 4 of 5, slices 24-29).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unet_zoo.data.sources import LabelledStack, register_source
from unet_zoo.data.split import split_slices
from unet_zoo.experiments.isbi2012.paper import TABLE1_CARD_FIELDS
from unet_zoo.utils.files import atomic_write_with, cache_dir, check_output_path, file_sha256

ISBI_PIXEL_SIZE_NM = 4.0
"""ISBI 2012's pixel size in nm (4 x 4 nm, serial-section TEM of the Drosophila ventral nerve cord)."""

ENV_VAR = "UNET_ZOO_DATA_DIR"
SHAPE = (30, 512, 512)
TRAIN_VOLUME, TRAIN_LABELS, TEST_VOLUME = "train-volume.tif", "train-labels.tif", "test-volume.tif"
REQUIRED_FILES = (TRAIN_VOLUME, TRAIN_LABELS)
ALL_FILES = (TRAIN_VOLUME, TRAIN_LABELS, TEST_VOLUME)

# sha256 of whole files we know. The "rebuilt" stacks (../shared/data/isbi2012) were rebuilt pixel for
# pixel from the per-slice PNGs of github.com/zhixuhao/unet (data/membrane) and written as uncompressed
# TIFF, so their file hashes differ from the files the challenge distributed; we do not know the
# official files' sha256.
KNOWN_FILE_SHA256: dict[str, dict[str, str]] = {
    TRAIN_VOLUME: {"rebuilt": "a05df637d576b2387966b7323a34e90e2cdbf86dcaeee86c44d1fd2d616be489"},
    TRAIN_LABELS: {"rebuilt": "9a9f1056ffd8bac61060b58dc84ad40295c02fc5ff15e68ddfc2f12d211c3dcf"},
    TEST_VOLUME: {"rebuilt": "046fbb869a953f1ffa63a9722849fe0aa693ad7a21aa9278a2bff2397d00b16f"},
}
# md5 of the official challenge files as recorded by a third-party downloader (an `ssTEM` dataset class
# on GitHub). Not checked by us against an official download: a match counts as verified, no match
# falls back to the pixel hashes below.
OFFICIAL_FILE_MD5: dict[str, str] = {
    TRAIN_VOLUME: "465461edbe0254630c4ec5577f1e7764",
    TRAIN_LABELS: "657fe6b728c6dd0152e295c6d800001d",
    TEST_VOLUME: "9767660d7abe4e0ecbdd0061a16058ad",
}
# sha256 of the pixel array (C-order uint8 bytes of the (30, 512, 512) stack, labels as stored: 0/255),
# measured on the rebuilt stacks. Independent of TIFF layout and compression, so it also recognises
# any other TIFF holding the same pixels.
KNOWN_PIXEL_SHA256: dict[str, str] = {
    TRAIN_VOLUME: "200da3d452d726e6c9ca1ce04b869d4edb727320d23b516d01cce707dc8c4760",
    TRAIN_LABELS: "a7cb64000a1a7e542682927e19c91339f58f9f178e0bcce4e207371116f0ca36",
    TEST_VOLUME: "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9",
}
# Base URLs tried in order; each must serve the three file names. The first is the challenge's own
# server (registration page: http://brainiac2.mit.edu/isbi_challenge/); the second a GitHub copy.
# Neither was reachable from the machine this was written on (no internet); checksums guard both.
MIRRORS: tuple[str, ...] = (
    "http://brainiac2.mit.edu/isbi_challenge/sites/default/files/",
    "https://github.com/alexklibisz/isbi-2012/raw/master/data/",
)


class DatasetNotFoundError(FileNotFoundError):
    """The ISBI 2012 folder or one of its files is missing; the message says where to put what."""


class ChecksumError(ValueError):
    """A downloaded file matches none of the known checksums."""


@dataclass
class IsbiData:
    """The loaded ISBI 2012 set.

    images: (30, 512, 512) uint8 raw EM of the training sections.
    labels: (30, 512, 512) uint8, 1 = cell, 0 = membrane.
    test_images: (30, 512, 512) uint8, or None when test-volume.tif is absent.
    data_dir: the folder the files were read from.
    """

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None
    data_dir: Path = field(default_factory=Path)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unet_zoo/isbi2012``, or ``~/.cache/unet_zoo/isbi2012``."""
    return cache_dir("isbi2012")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The ISBI folder: `data_dir` if given, else $UNET_ZOO_DATA_DIR, else `default_cache_dir()`.

    Only resolves the path (expanding ``~``); it does not check that the folder exists.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_VAR) or default_cache_dir()
    return Path(data_dir).expanduser()


def _how_to_fix(folder: Path) -> str:
    return (
        f"The data folder is the --data-dir option (the data_dir argument), else the environment variable "
        f"{ENV_VAR}, else the cache folder {default_cache_dir()}: put {', '.join(REQUIRED_FILES)} "
        f"(and optionally {TEST_VOLUME}) in {folder} or in a folder you name one of those ways, "
        "or run `unet-zoo data download isbi` to fetch them into the cache folder."
    )


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """The ISBI 2012 folder that holds the data: `resolve_data_dir(data_dir)`, checked.

    The one way every part of unet_zoo finds the data: `data_dir` if given, else $UNET_ZOO_DATA_DIR, else
    `default_cache_dir()` (where `unet-zoo data download isbi` puts it). Returns the folder when it holds
    train-volume.tif and train-labels.tif; raises DatasetNotFoundError (a FileNotFoundError) naming the
    folder, the missing files and all three ways to point at the data otherwise.
    """
    folder = resolve_data_dir(data_dir)
    if folder.exists() and not folder.is_dir():
        given = "--data-dir" if data_dir not in (None, "") else (f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default")
        raise DatasetNotFoundError(
            f"ISBI 2012 data folder {folder} (from {given}) is a file, not a folder: point {given} at the folder "
            f"that holds {', '.join(REQUIRED_FILES)}"
        )
    if not folder.is_dir():
        raise DatasetNotFoundError(f"ISBI 2012 data folder {folder} does not exist. {_how_to_fix(folder)}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise DatasetNotFoundError(f"{', '.join(missing)} not found in {folder}. {_how_to_fix(folder)}")
    return folder


_DAMAGE_WORDS = ("invalid page offset", "corrupt", "truncat", "failed to read")


class _TiffLog(logging.Handler):
    """Collects the messages tifffile logs while one file is read."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read_stack(path: str | Path, *, labels: bool = False) -> np.ndarray:
    """Read one ISBI TIFF stack and check it: (30, 512, 512) uint8; labels only 0 and 255 (or 0/1).

    Returns the array as stored (labels still 0/255). Raises DatasetNotFoundError when the file is
    missing and ValueError naming the file when it is unreadable, truncated, or of the wrong shape,
    dtype or values.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path.name} not found in {path.parent}. {_how_to_fix(path.parent)}")
    broken = "the file is probably truncated or corrupt: delete it and download it again (`unet-zoo data download isbi`)."
    # tifffile only logs (does not raise) when the chain of page headers at the end of a file is cut
    # off; it then rebuilds the stack from the first page's metadata. Such a file is truncated: refuse it.
    records = _TiffLog()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(records)
    try:
        array = tifffile.imread(path)
    except Exception as err:  # tifffile raises several types for broken files
        raise ValueError(f"{path} could not be read as a TIFF stack ({type(err).__name__}: {err}); {broken}") from None
    finally:
        tiff_logger.removeHandler(records)
    damage = [m for m in records.messages if any(word in m.lower() for word in _DAMAGE_WORDS)]
    if damage:
        raise ValueError(f"{path} has a damaged TIFF structure (tifffile: {damage[0]}); {broken}")
    for message in records.messages:
        logging.getLogger(__name__).warning("%s: tifffile: %s", path, message)
    if array.shape != SHAPE:
        raise ValueError(
            f"{path} has shape {array.shape}, expected {SHAPE} (sections, height, width); "
            "it is not the ISBI 2012 stack, or it is truncated: replace it."
        )
    if array.dtype != np.uint8:
        raise ValueError(f"{path} has dtype {array.dtype}, expected uint8; it is not the ISBI 2012 stack.")
    if labels:
        values = np.unique(array)
        if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
            shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
            raise ValueError(
                f"{path} is not a binary label stack: it holds the values {shown}, expected only 0 (membrane) "
                "and 255 (cell). Check that it is train-labels.tif and not an image or a probability map."
            )
    return array


def load_isbi(data_dir: str | Path | None = None) -> IsbiData:
    """Load ISBI 2012 from `data_dir` (found by `find_data_dir`), validating every file.

    Returns IsbiData with images (30, 512, 512) uint8, labels (30, 512, 512) uint8 in {0, 1}
    (1 = cell, 0 = membrane) and test_images (or None if test-volume.tif is absent).
    Raises DatasetNotFoundError (a FileNotFoundError) for a missing folder or file, ValueError for a
    broken one; both messages name the file and say what to do.
    """
    folder = find_data_dir(data_dir)
    images = read_stack(folder / TRAIN_VOLUME)
    labels = (read_stack(folder / TRAIN_LABELS, labels=True) > 0).astype(np.uint8)
    test = read_stack(folder / TEST_VOLUME) if (folder / TEST_VOLUME).is_file() else None
    return IsbiData(images=images, labels=labels, test_images=test, data_dir=folder)


def training_stack(data_dir: str | Path | None = None) -> LabelledStack:
    """The labelled training stack as the recipes' data source ``"isbi2012"``: (30, 512, 512) images and labels
    (1 = cell) from `load_isbi`, at `ISBI_PIXEL_SIZE_NM`."""
    data = load_isbi(data_dir)
    return LabelledStack(data.images, data.labels, f"ISBI 2012 ({data.data_dir})", ISBI_PIXEL_SIZE_NM)


register_source("isbi2012", training_stack, card_fields=TABLE1_CARD_FIELDS)


# --- checksums and download ---------------------------------------------------------------------


def pixel_sha256(array: np.ndarray) -> str:
    """Hex sha256 of an array's C-order bytes (the pixel hash in KNOWN_PIXEL_SHA256)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def verify_file(path: str | Path, name: str | None = None) -> str:
    """Check an ISBI file against the known checksums; returns how it was verified.

    `name`: which ISBI file `path` holds (default: its file name; a download is checked under a temporary name).
    Returns "file sha256 (<source>)", "official md5 (third-party record)" or "pixel sha256".
    Raises ChecksumError when the file is readable but matches nothing known, ValueError/
    DatasetNotFoundError from `read_stack` when it is broken or missing.
    """
    path = Path(path)
    name = name or path.name
    if name not in KNOWN_PIXEL_SHA256:
        raise ValueError(f"{path}: not an ISBI 2012 file name; expected one of {', '.join(ALL_FILES)}")
    sha = file_sha256(path)
    for source, known in KNOWN_FILE_SHA256[name].items():
        if sha == known:
            return f"file sha256 ({source})"
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    if md5 == OFFICIAL_FILE_MD5[name]:
        return "official md5 (third-party record)"
    array = read_stack(path, labels=name == TRAIN_LABELS)
    if pixel_sha256(array) == KNOWN_PIXEL_SHA256[name]:
        return "pixel sha256"
    raise ChecksumError(
        f"{path} is a {SHAPE} uint8 stack but matches no known checksum (file sha256 {sha}); "
        "it is not the ISBI 2012 data we know. Delete it, or keep it with --no-verify if you trust its source."
    )


ProgressHook = Callable[[str, int, int | None], None]
"""progress(file name, bytes done, total bytes or None)."""


def _fetch(url: str, dest: Path, timeout: float, progress: ProgressHook | None, check: Callable[[Path], str]) -> str:
    """Download `url` into a temporary file beside `dest`, `check` it (returns how it was verified, raises when it
    is wrong), and only then move it onto `dest`; returns what `check` said.

    A failed, truncated or wrong download is removed and leaves `dest` (if it exists) exactly as it was.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "unet_zoo"})
    verdict: list[str] = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total else None

        def stream(tmp: str) -> None:
            done = 0
            with open(tmp, "wb") as out:
                while block := response.read(1 << 16):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(dest.name, done, total)
            if total is not None and done != total:
                raise ValueError(f"{url}: download truncated ({done} of {total} bytes)")
            verdict.append(check(Path(tmp)))

        atomic_write_with(dest, stream, suffix=".part")
    return verdict[0]


def _check_folder(folder: Path) -> None:
    """OSError (a message naming `folder` and what to do) when the data folder cannot be created or written."""
    check_output_path(folder, folder=True)


def download_isbi(
    data_dir: str | Path | None = None,
    *,
    urls: Iterable[str] | None = None,
    files: Iterable[str] = ALL_FILES,
    timeout: float = 10.0,
    verify: bool = True,
    force: bool = False,
    progress: ProgressHook | None = None,
) -> dict[str, str]:
    """Download the ISBI 2012 stacks into `data_dir` (see `resolve_data_dir`), verifying each.

    urls: base URLs (ending in '/') tried in order for every file; default `MIRRORS`.
    Files already present and verified are kept unless `force`. Returns {file name: how verified}.
    Each file is downloaded to a temporary file beside its destination and checked there (verify=False skips
    the checksums, not the TIFF shape check); only a good file is moved into place, so a failed or wrong
    download never changes or deletes a file that was there. Before anything is downloaded: the folder must be
    writable (OSError, e.g. NotADirectoryError or PermissionError, naming it), and a file already present that
    does not verify is replaced only with `force` (FileExistsError otherwise: it may be the user's own copy).
    Raises DatasetNotFoundError at the first file no mirror could deliver (connection errors fail after
    `timeout` seconds), listing each URL's error and saying which files to put where by hand.
    """
    folder = resolve_data_dir(data_dir)
    _check_folder(folder)
    files = list(files)
    bases = [u if u.endswith("/") else u + "/" for u in (urls or MIRRORS)]
    report: dict[str, str] = {}
    for name in files:  # what is there already: kept when it verifies, else only replaced with force
        dest = folder / name
        if dest.exists() and not dest.is_file():
            raise IsADirectoryError(f"{dest} is a folder, not a file; move it away to download {name}")
        if dest.is_file() and not force:
            try:
                report[name] = verify_file(dest) if verify else "present (not verified)"
            except (ValueError, FileNotFoundError) as err:
                raise FileExistsError(
                    f"{dest} is already there but is not the ISBI 2012 file we know ({str(err).split(';')[0]}); "
                    "it is left as it is: keep it with --no-verify (verify=False) if you trust it, or pass --overwrite "
                    "(force=True) to replace it with a verified download"
                ) from None
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        if name in report:
            continue
        dest = folder / name
        labels = name == TRAIN_LABELS

        def check(tmp: Path, name: str = name, labels: bool = labels) -> str:
            try:
                if verify:
                    return verify_file(tmp, name)
                read_stack(tmp, labels=labels)
                return "downloaded (not verified)"
            except ValueError as err:  # name the download, not its temporary file
                raise type(err)(str(err).replace(str(tmp), f"the downloaded {name}")) from None

        errors = []
        for base in bases:
            try:
                report[name] = _fetch(base + name, dest, timeout, progress, check)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:  # ChecksumError is a ValueError
                errors.append(f"{base + name}: {getattr(err, 'reason', err)}")
        else:
            kept = f"{dest} was left as it was.\n" if dest.exists() else ""
            raise DatasetNotFoundError(
                f"could not download {name}; tried:\n  " + "\n  ".join(errors) + f"\n{kept}"
                f"If this machine is offline, copy {', '.join(ALL_FILES)} (from "
                "http://brainiac2.mit.edu/isbi_challenge/, after registering) into "
                f"{folder}, or set {ENV_VAR} / --data-dir to a folder that holds them."
            )
    return {name: report[name] for name in files}


def describe(data_dir: str | Path | None = None, *, checksums: bool = True) -> dict:
    """What `unet-zoo data info` shows: the folder, how it was chosen, each file's state, the split.

    Returns a JSON-serialisable dict; never raises for missing or broken files (they are reported).
    """
    folder = resolve_data_dir(data_dir)
    source = "argument" if data_dir else ("$" + ENV_VAR if os.environ.get(ENV_VAR) else "default cache dir")
    files = {}
    for name in ALL_FILES:
        path = folder / name
        entry: dict = {"path": str(path), "present": path.is_file()}
        if path.is_file():
            entry["bytes"] = path.stat().st_size
            try:
                array = read_stack(path, labels=name == TRAIN_LABELS)
                entry.update(shape=list(array.shape), dtype=str(array.dtype))
                if name == TRAIN_LABELS:
                    entry["cell_fraction"] = float((array > 0).mean())
                if checksums:
                    entry["sha256"] = file_sha256(path)
                    try:
                        entry["verified"] = verify_file(path)
                    except ChecksumError:
                        entry["verified"] = "no known checksum matches"
            except ValueError as err:
                entry["error"] = str(err)
        files[name] = entry
    train, val = split_slices()
    return {
        "data_dir": str(folder),
        "source": source,
        "files": files,
        "ready": all(files[n].get("shape") for n in REQUIRED_FILES),
        "split": {"k": 5, "fold": 4, "train": train, "validation": val},
    }


__all__ = [
    "ALL_FILES",
    "ISBI_PIXEL_SIZE_NM",
    "ChecksumError",
    "DatasetNotFoundError",
    "IsbiData",
    "MIRRORS",
    "default_cache_dir",
    "describe",
    "download_isbi",
    "file_sha256",
    "find_data_dir",
    "load_isbi",
    "pixel_sha256",
    "read_stack",
    "resolve_data_dir",
    "training_stack",
    "verify_file",
]
