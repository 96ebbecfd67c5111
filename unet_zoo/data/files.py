"""Your own images and labels as training data: TIFF stacks, folders of TIFF/PNG pairs, Zarr arrays.

    pairs = load_labelled_images("em.tif", "membranes.tif", foreground="membrane")
    pairs.images   # (S, H, W) uint8
    pairs.labels   # (S, H, W) uint8, 1 = cell, 0 = membrane (the trainer's convention)

Labels come in three forms (`label_form`):

- ``"binary"`` mask, 0 and one other value, of either polarity: ``foreground = "cell"`` (ISBI 2012: 255 =
  cell, 0 = membrane) or ``foreground = "membrane"`` (many datasets: 1 = membrane, 0 = cell).
- ``"instances"``: one integer ID per cell, 0 = boundary or background. A pixel becomes membrane when it is 0
  or when one of its 4 neighbours carries another ID, so each contact between two cells gives a membrane
  2 px wide (one pixel on each side); ``boundary_width`` > 2 widens it by dilation (even widths are exact,
  odd ones round up), 1 keeps only the pixel on the higher-ID side of each contact.
- ``"scribbles"``: sparse strokes, 0 = not labelled, 1 = membrane, 2 = cell interior (what ilastik and napari
  Labels layers produce). Only the labelled pixels train and score (`LabelledImages.labelled`).
- ``"auto"``: scribbles when the values are exactly {0, 1, 2} and more than half of the pixels are 0, else
  binary when the labels hold at most two values, else instances.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unet_zoo.data.reading import PNG_SUFFIXES, TIFF_SUFFIXES, is_zarr_path, read_image
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import file_sha256

Foreground = Literal["cell", "membrane"]
LabelForm = Literal["auto", "binary", "instances", "scribbles"]
FOREGROUNDS: tuple[str, ...] = ("cell", "membrane")
LABEL_FORMS: tuple[str, ...] = ("auto", "binary", "instances", "scribbles")
SCRIBBLE_VALUES = (0, 1, 2)  # not labelled, membrane, cell interior
SCRIBBLE_MIN_UNLABELLED = 0.5  # "auto" reads {0, 1, 2} as scribbles when more than this share of pixels is 0
PAIR_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES
MAX_MEMBRANE_FRACTION = 0.5  # more membrane than this looks like an inverted polarity


class LabelledDataError(InputError):
    """Images and labels that cannot be trained on: say what is wrong and what to do."""


@dataclass
class ArrayFile:
    """One read input: `array` (S, H, W), the `files` it came from, and its pixel size in nm (None = not recorded)."""

    array: np.ndarray
    files: list[Path]
    pixel_size: float | None = None


@dataclass
class LabelledImages:
    """Images (S, H, W) uint8 and labels (S, H, W) uint8 (1 = cell, 0 = membrane), and what they came from:
    `files` (name -> sha256 of the file's bytes, or of a Zarr array's data), `label_form` as resolved,
    `pixel_size` in nm (from the files' metadata; None when not recorded). `labelled`: (S, H, W) bool, the
    pixels that carry a label (scribbles); None when every pixel does."""

    images: np.ndarray
    labels: np.ndarray
    files: dict[str, str] = field(default_factory=dict)
    label_form: str = "binary"
    foreground: str = "cell"
    pixel_size: float | None = None
    labelled: np.ndarray | None = None

    def summary(self) -> str:
        """One line for a model card: files with their sha256 (first 12 hex digits), shape, label form."""
        files = ", ".join(f"{Path(name).name} (sha256 {sha[:12]}...)" for name, sha in self.files.items())
        s, h, w = self.images.shape
        form = self._form_text()
        size = f", {self.pixel_size:g} nm/px" if self.pixel_size else ""
        return f"{files}; {s} slice(s) of {h}x{w} px{size}; labels: {form}"

    def describe(self) -> dict[str, Any]:
        """What a model card says about these data: files with sha256, shape, label form, pixel size."""
        return {
            "files": dict(self.files),
            "shape": list(self.images.shape),
            "label_form": self._form_text(),
            "pixel_size_nm": self.pixel_size,
        }

    def _form_text(self) -> str:
        if self.label_form == "instances":
            return "instance labels"
        if self.label_form == "scribbles" and self.labelled is not None:
            share = 100 * float(self.labelled.mean())
            return f"scribbles (1 = membrane, 2 = cell; {share:.2g}% of the pixels labelled)"
        return f"binary mask, foreground = {self.foreground}"


# --- reading ---------------------------------------------------------------------------------------------------


def _as_stack(array: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) or (S, H, W) from any array with length-1 axes (e.g. OME-Zarr's (t, c, z, y, x))."""
    squeezed = array.reshape([n for n in array.shape[:-2] if n != 1] + list(array.shape[-2:]))
    if squeezed.ndim == 2:
        return squeezed[None]
    if squeezed.ndim != 3:
        raise LabelledDataError(f"{path}: expected a 2-D image or a (S, H, W) stack, got shape {array.shape}")
    return squeezed


def read_array(path: str | os.PathLike) -> ArrayFile:
    """Read a TIFF (2-D or stack), a PNG, a Zarr / OME-Zarr array (`unet_zoo.data.reading.read_image`), or a
    folder of TIFF/PNG files (sorted by name, one slice each) as a (S, H, W) stack in its own dtype, with its pixel
    size when recorded."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir() and not is_zarr_path(path):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in PAIR_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise LabelledDataError(f"{path} holds no {', '.join(PAIR_SUFFIXES)} files")
        slices = [read_array(p) for p in files]
        shapes = {s.array.shape[1:] for s in slices}
        if len(shapes) > 1:
            raise LabelledDataError(f"the images in {path} differ in size ({sorted(shapes)}); crop them to one size")
        return ArrayFile(np.concatenate([s.array for s in slices]), files, slices[0].pixel_size)
    if not is_zarr_path(path) and path.suffix.lower() not in PAIR_SUFFIXES:
        raise LabelledDataError(f"cannot read {path}: use a TIFF, a PNG, a folder of them, or a .zarr array")
    image = read_image(path)
    return ArrayFile(_as_stack(np.asarray(image.pixels), path), [path], image.pixel_size_nm)


def _digest(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()  # a Zarr store: its files, by name and content
    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(sub.relative_to(path)).encode())
        digest.update(file_sha256(sub).encode())
    return digest.hexdigest()


# --- images and labels -------------------------------------------------------------------------------------------


def image_to_uint8(image: np.ndarray, where: str = "images") -> np.ndarray:
    """(S, H, W) uint8 from uint8 (as is), other integer dtypes and floats (min-max over the stack; floats
    in [0, 1] times 255). Bool, complex, non-finite and constant images (of any dtype) are refused."""
    if image.dtype == np.uint8:
        if image.size and image.min() == image.max():
            raise LabelledDataError(f"{where}: every pixel has the same value {int(image.min())}; nothing to learn from")
        return image
    if image.dtype.kind not in "iuf":
        raise LabelledDataError(f"{where}: unsupported image dtype {image.dtype}; use 8- or 16-bit integers or floats")
    values = image.astype(np.float64)
    if not np.isfinite(values).all():
        raise LabelledDataError(f"{where}: the images hold NaN or infinite values")
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise LabelledDataError(f"{where}: every pixel has the same value {lo:g}; nothing to learn from")
    if image.dtype.kind == "f" and lo >= 0 and hi <= 1:
        return np.round(values * 255).astype(np.uint8)
    return np.round((values - lo) / (hi - lo) * 255).astype(np.uint8)


def boundaries(instances: np.ndarray, width: int = 2) -> np.ndarray:
    """(H, W) bool membrane of an instance label image (0 = boundary/background): pixels that are 0 or have a
    4-neighbour with another ID (width 2: both sides of each contact); width 1: only the higher-ID side;
    width > 2: that map dilated by (width - 1) // 2 px on each side (even widths are exact, odd ones round up)."""
    from scipy import ndimage

    if width < 1:
        raise LabelledDataError(f"boundary width must be >= 1 pixel, got {width}")
    ids = np.asarray(instances)
    edge = ids == 0
    for axis in (0, 1):
        a = ids.take(range(ids.shape[axis] - 1), axis=axis)
        b = ids.take(range(1, ids.shape[axis]), axis=axis)
        differs = a != b
        lower = [slice(None)] * 2
        upper = [slice(None)] * 2
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        if width == 1:
            edge[tuple(lower)] |= differs & (a > b)
            edge[tuple(upper)] |= differs & (b > a)
        else:
            edge[tuple(lower)] |= differs
            edge[tuple(upper)] |= differs
    if width > 2:
        edge = ndimage.binary_dilation(edge, iterations=(width - 1) // 2)
    return edge


def resolve_label_form(labels: np.ndarray, label_form: LabelForm = "auto") -> str:
    """The label form "auto" stands for with these (S, H, W) integer labels (module docstring); others as given."""
    if label_form != "auto":
        return label_form
    values = np.unique(labels)
    if values.tolist() == list(SCRIBBLE_VALUES) and float((labels == 0).mean()) > SCRIBBLE_MIN_UNLABELLED:
        return "scribbles"
    return "binary" if len(values) <= 2 else "instances"


def scribbles_to_cells(labels: np.ndarray, where: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """(S, H, W) scribbles (0 = not labelled, 1 = membrane, 2 = cell) -> ((S, H, W) uint8 1 = cell, 0 = membrane or
    not labelled; (S, H, W) bool labelled). Refuses other values and strokes of only one class."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise LabelledDataError(f"{where}: scribbles must be integers 0, 1, 2, got dtype {labels.dtype}")
    values = np.unique(labels)
    other = [v for v in values.tolist() if v not in SCRIBBLE_VALUES]
    if other:
        raise LabelledDataError(
            f"{where}: scribbles hold only 0 (not labelled), 1 (membrane) and 2 (cell), these also hold "
            f"{', '.join(map(str, other[:5]))}{' ...' if len(other) > 5 else ''}; relabel them, or choose another label form"
        )
    for value, name in ((1, "membrane"), (2, "cell")):
        if value not in values:
            raise LabelledDataError(f"{where}: no {name} stroke (value {value}); paint at least one stroke of each class")
    return (labels == 2).astype(np.uint8), labels != 0


def labels_to_cells(
    labels: np.ndarray,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
    where: str = "labels",
) -> tuple[np.ndarray, str]:
    """(S, H, W) labels of any form (module docstring) -> ((S, H, W) uint8 1 = cell / 0 = membrane, the form used).

    Refuses labels of a single class and binary masks with more membrane than cell (an inverted polarity).
    Scribbles: 1 = cell where a cell stroke is, else 0 (`read_labels` also returns which pixels are labelled)."""
    cells, form, _ = read_labels(labels, foreground, label_form, boundary_width, where)
    return cells, form


def read_labels(
    labels: np.ndarray,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
    where: str = "labels",
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """`labels_to_cells` plus the (S, H, W) bool map of labelled pixels (scribbles; None for dense labels)."""
    if foreground not in FOREGROUNDS:
        raise LabelledDataError(f"foreground must be 'cell' or 'membrane', got {foreground!r}")
    if label_form not in LABEL_FORMS:
        raise LabelledDataError(f"label form must be one of {', '.join(LABEL_FORMS)}, got {label_form!r}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise LabelledDataError(f"{where}: labels must be integers (a mask or cell IDs), got dtype {labels.dtype}")
    form = resolve_label_form(labels, label_form)
    if form == "scribbles":
        cells, labelled = scribbles_to_cells(labels, where)
        return cells, form, labelled
    values = np.unique(labels)
    if form == "binary":
        if len(values) > 2:
            raise LabelledDataError(
                f"{where}: a binary mask holds two values, these hold {len(values)} ({values[:6].tolist()} ...); "
                "for one ID per cell use the instances label form, for strokes (0, 1, 2) the scribbles form"
            )
        on = labels != 0
        cells = on if foreground == "cell" else ~on
    else:
        cells = ~np.stack([boundaries(s, boundary_width) for s in labels])
    fraction = float(cells.mean())
    if fraction in (0.0, 1.0):
        what = "cell" if fraction == 1.0 else "membrane"
        raise LabelledDataError(f"{where}: every pixel is {what}; the labels need both cells and membranes")
    if form == "binary" and 1 - fraction > MAX_MEMBRANE_FRACTION:
        other = "membrane" if foreground == "cell" else "cell"
        raise LabelledDataError(
            f"{where}: {100 * (1 - fraction):.0f}% of the pixels would be membrane with foreground = {foreground!r}; "
            f"the polarity looks inverted: pass foreground = {other!r} (--foreground {other})"
        )
    return cells.astype(np.uint8), form, None


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes (what a card records for data passed as arrays)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape} {array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def labelled_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
    pixel_size: float | None = None,
    name: str = "array",
) -> LabelledImages:
    """`load_labelled_images` for in-memory (H, W) or (S, H, W) arrays (e.g. napari layers); `name` goes on the card."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 2:
        images = images[None]
    if labels.ndim == 2:
        labels = labels[None]
    if images.ndim != 3 or images.shape != labels.shape:
        raise LabelledDataError(
            f"images {images.shape} and labels {labels.shape} ({name}) differ in shape; they must be the same (S, H, W)"
        )
    cells, form, labelled = read_labels(labels, foreground, label_form, boundary_width, where=f"{name} labels")
    files = {f"{name} images": array_digest(images), f"{name} labels": array_digest(labels)}
    uint8 = image_to_uint8(images, where=f"{name} images")
    return LabelledImages(uint8, cells, files, form, foreground, pixel_size, labelled)


def load_labelled_images(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    *,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
) -> LabelledImages:
    """Read images and labels (a TIFF stack, a folder of TIFF/PNG files matched by name, or a Zarr array each)
    and check that they pair up; labels are converted to 1 = cell, 0 = membrane (`labels_to_cells`)."""
    image_in, label_in = read_array(images), read_array(labels)
    if len(image_in.files) > 1 or len(label_in.files) > 1:
        image_names = [p.stem for p in image_in.files]
        label_names = [p.stem for p in label_in.files]
        if len(image_names) != len(label_names):
            raise LabelledDataError(f"{len(image_names)} images in {images} but {len(label_names)} labels in {labels}")
        if image_names != label_names:
            missing = sorted(set(image_names) ^ set(label_names))[:5]
            raise LabelledDataError(f"images and labels are matched by name; unmatched: {', '.join(missing)}")
    if image_in.array.shape != label_in.array.shape:
        raise LabelledDataError(
            f"images {image_in.array.shape} ({images}) and labels {label_in.array.shape} ({labels}) differ in shape; "
            "they must be the same (S, H, W)"
        )
    cells, form, labelled = read_labels(label_in.array, foreground, label_form, boundary_width, where=str(labels))
    files = {str(p): _digest(p) for p in [*image_in.files, *label_in.files]}
    uint8 = image_to_uint8(image_in.array, where=str(images))
    return LabelledImages(uint8, cells, files, form, foreground, image_in.pixel_size, labelled)


__all__ = [
    "ArrayFile",
    "FOREGROUNDS",
    "LABEL_FORMS",
    "LabelledDataError",
    "LabelledImages",
    "SCRIBBLE_VALUES",
    "array_digest",
    "boundaries",
    "image_to_uint8",
    "labelled_arrays",
    "labels_to_cells",
    "load_labelled_images",
    "read_array",
    "read_labels",
    "resolve_label_form",
    "scribbles_to_cells",
]
