"""`unet_zoo.export(model, format, path)`: a zoo model as ONNX, TorchScript or a bioimage.io package.

All formats compute softmax probabilities from (N, C_in, H, W) float32 images scaled to [0, 1] (the
bioimage.io package takes uint8 images and divides by 255 itself). Height and width are dynamic but
must follow the model's size rule: valid-convolution `original` takes 188 + 16n pixels and returns
input - 184 (572 -> 388); the padded U-Nets take multiples of 16 and keep the size. Every ONNX and
TorchScript export is run (onnxruntime, torch.jit.load) and compared with the torch model before it is
written (max abs difference of the probabilities <= 1e-4). Files appear atomically; an existing file
is replaced only with ``force=True``. onnx, onnxruntime and bioimageio.* come with the ``export`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from unet_zoo.exporters.bioimageio import export_bioimageio
from unet_zoo.exporters.sessions import onnxruntime_session, require, session_forward
from unet_zoo.exporters.traced import check_export, load_torchscript, onnx_bytes, torchscript_bytes
from unet_zoo.hub.serialization import model_identity
from unet_zoo.models.provenance import provenance_of
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import atomic_write_bytes, check_output_path

FORMATS = ("onnx", "torchscript", "bioimageio")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "bioimageio": ".zip"}
# the file name endings each format may be written under (a runtime picks its loader by them)
ACCEPTED_SUFFIXES: dict[str, tuple[str, ...]] = {
    "onnx": (".onnx",),
    "torchscript": (".pt", ".pth", ".torchscript", ".ts"),
    "bioimageio": (".zip",),
}


def check_suffix(format: str, path: str | Path) -> None:
    """InputError unless `path` ends as a `format` file should (an ONNX file named ``.pt`` would be loaded
    by the wrong runtime); the message names the suffixes that fit and the format that fits the name."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ACCEPTED_SUFFIXES[format]:
        return
    fits = [f for f, endings in ACCEPTED_SUFFIXES.items() if suffix in endings]
    other = f" ({suffix} is the suffix of {fits[0]} exports)" if fits else ""
    raise InputError(
        f"{path}: a {format} export must be named *{' / *'.join(ACCEPTED_SUFFIXES[format])}{other}; "
        f"rename it, e.g. {path.with_suffix(SUFFIXES[format]).name}"
    )


class ExportError(RuntimeError):
    """A model could not be exported to a format (the message names the formats that do work)."""


def _onnx(model: nn.Module, path: Path) -> None:
    require("onnx", "exporting to ONNX")
    require("onnxruntime", "checking the ONNX export")
    data = onnx_bytes(model)
    check_export(model, session_forward(onnxruntime_session(data)))
    _write(path, data)


def _torchscript(model: nn.Module, path: Path) -> None:
    data = torchscript_bytes(model)
    check_export(model, load_torchscript(data))
    _write(path, data)


def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _identity(model: nn.Module) -> None:
    model_identity(model)  # the state-dict weights of a bioimage.io package need a rebuildable model


def working_formats(model: nn.Module, exclude: str | None = None) -> list[str]:
    """The formats among FORMATS (except `exclude`) whose export of `model` runs and matches torch."""
    checks = {
        "onnx": lambda: check_export(model, session_forward(onnxruntime_session(onnx_bytes(model)))),
        "torchscript": lambda: check_export(model, load_torchscript(torchscript_bytes(model))),
        "bioimageio": lambda: _identity(model),
    }
    works = []
    for fmt, check in checks.items():
        if fmt == exclude:
            continue
        try:
            check()
        except Exception:  # noqa: BLE001  any failure means "does not work"
            continue
        works.append(fmt)
    return works


def export(
    model: nn.Module,
    format: str,
    path: str | Path,
    *,
    force: bool = False,
    sample: np.ndarray | None = None,
    name: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Export `model` to `path` as "onnx", "torchscript" or "bioimageio" (a .zip package); returns the path.

    Args:
        model: a zoo model (e.g. ``unet_zoo.from_pretrained("isbi-small")``); exported from a float32 CPU copy.
        format: one of FORMATS.
        path: output file; refused if it exists unless `force` (then replaced atomically).
        sample: bioimageio only: a 2-D uint8 image for the test tensors and cover (default: ISBI slice 0
            when the data is on this machine, else a synthetic image).
        name: bioimageio only: the package name (default: the checkpoint or architecture name).
        note: called with messages about what was left out (e.g. a weight format that did not export).

    Raises:
        ValueError (unknown format), InputError (a suffix that does not fit `format`; a model card that
        is a symlink, outside the model folder or not UTF-8), FileExistsError (`path` exists, no `force`), another OSError (`path`
        cannot be written: checked before exporting, see `unet_zoo.utils.files.check_output_path`), ImportError (the
        ``export`` extra is missing), ExportError (the model does not export to `format`; names the
        formats that work).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name, e.g. {path / ('model' + SUFFIXES[format])}")
    check_suffix(format, path)
    check_output_path(path, overwrite=force, overwrite_hint="pass force=True to overwrite it")
    if sample is not None and (np.asarray(sample).dtype != np.uint8 or np.asarray(sample).ndim not in (2, 3)):
        raise ValueError(
            f"sample must be a uint8 image (H, W) or (C, H, W), got {np.asarray(sample).dtype} {np.asarray(sample).shape}"
        )
    try:
        if format == "onnx":
            _onnx(model, path)
        elif format == "torchscript":
            _torchscript(model, path)
        else:
            export_bioimageio(model, path, sample=sample, name=name, note=note)
    except (ImportError, OSError, InputError):  # a missing extra, a refused write, a bad model folder file:
        raise  # not the format's fault
    except Exception as err:  # noqa: BLE001  exporters raise anything; say which format failed and what works
        raise _export_error(model, format, err) from err
    return path


def _export_error(model: nn.Module, format: str, err: Exception) -> ExportError:
    name = provenance_of(model).architecture
    works = working_formats(model, exclude=format)
    alternatives = f"formats that work for this model: {', '.join(works)}" if works else "no other format works either"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ExportError(f"cannot export {name!r} to {format}: {first[:300]}; {alternatives}")


__all__ = ["ACCEPTED_SUFFIXES", "ExportError", "FORMATS", "check_suffix", "export", "working_formats"]
