"""`unet-zoo predict` and `unet-zoo evaluate`: thin layers over unet_zoo.inference.tiling and unet_zoo.evaluation.evaluate."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_device, check_output, console, fail, outputs_as_one_unit, print_json
from unet_zoo.cli.progress import ProgressDisplay
from unet_zoo.cli.tables import comparison_table, segmentation_table
from unet_zoo.cli.volumes import is_volume_request, predict_volume_command
from unet_zoo.data.files import tiff_pixel_size
from unet_zoo.data.images import (
    READABLE_SUFFIXES,
    prediction_names,
    read_image,
    uncertainty_name,
    write_prediction,
    write_prob_tiff,
)
from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.data.split import split_slices
from unet_zoo.experiments.isbi2012.data import load_isbi
from unet_zoo.experiments.isbi2012.evaluation import evaluate_isbi
from unet_zoo.exporters.paths import choose_inference_path
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.pretrained import CheckpointError, HubAccessError
from unet_zoo.inference.rescale import model_pixel_size, predict_at_pixel_size, scale_factor, uncertainty_at_pixel_size
from unet_zoo.models.provenance import provenance_of
from unet_zoo.runtime.measured import BACKENDS, INFERENCE_PATH_ENV, InferenceChoice, check_inference_path_env
from unet_zoo.runtime.settings import PRECISIONS, Precision
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.files import atomic_write_bytes


def _load(model: str, device: str | None):
    if device:
        check_device(device)
    try:
        return from_pretrained(model, device=resolve_device(device), allow_architecture=True)
    except (CheckpointError, HubAccessError) as err:  # not cached offline, bad token, tampered file, ...
        raise fail(str(err)) from None
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        raise fail(str(err.args[0] if err.args else err)) from None


def choose_path(net, backend: str, precision: Precision) -> InferenceChoice:
    """The inference path for `net` on its device (`unet_zoo.exporters.paths.choose_inference_path`): the one
    --backend and --precision leave, else $UNET_ZOO_INFERENCE_PATH, else the fastest measured here (cached).
    Says which and why; a combination with no path or a missing backend is a red error, exit 2."""
    try:
        choice = choose_inference_path(net, backend=backend, precision=precision, log=_measuring)
    except ImportError as err:  # names the extra to install
        raise fail(str(err)) from None
    except ValueError as err:
        text = (
            str(err).replace("backend ", "--backend ").replace("precision ", "--precision ").replace("device cpu", "--device cpu")
        )
        raise fail(text if INFERENCE_PATH_ENV not in text else str(err)) from None
    except Exception as err:  # noqa: BLE001  the exporter rejects the model: say so, keep torch as the way out
        raise fail(f"cannot run {provenance_of(net).label} with --backend {backend} ({err}); use --backend torch") from None
    console.print(f"inference path: {choice.describe()}", markup=False, highlight=False)
    return choice


def _measuring(message: str) -> None:
    console.print(f"first run of this model here: {message}", markup=False, highlight=False)


def check_backend(backend: str, precision: str, device: str | None) -> None:
    """A red error (exit 2) for an unknown --backend, an exported backend on a GPU or asked for bf16 it lacks."""
    if backend not in BACKENDS:
        raise fail(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend in ("onnxruntime", "openvino") and device not in (None, "", "cpu"):
        raise fail(f"--backend {backend} runs on the CPU; drop --device {device} or use --backend torch")
    if backend == "onnxruntime" and precision == "bf16":
        raise fail("--backend onnxruntime runs in float32; use --precision fp32 (or auto), or --backend torch for bf16")
    try:
        check_inference_path_env()
    except ValueError as err:
        raise fail(str(err)) from None


def check_precision(precision: str | None) -> Precision:
    """`precision` if it is auto, bf16 or fp32; else a red error, exit 2."""
    if precision is None:
        return "auto"
    if precision not in PRECISIONS:
        raise fail(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    return precision  # type: ignore[return-value]  # one of PRECISIONS


def _read_for_prediction(path: Path, pixel_size: float | None, net, verb: str) -> tuple[np.ndarray, float | None]:
    """The image of `path` and its pixel size in nm (`pixel_size`, else the TIFF's resolution tags); says when the
    image will be rescaled to the model's pixel size (`verb`: "rescaled to", "segmented at"). Bad files: a red error."""
    try:
        image = read_image(path)
    except (ValueError, OSError) as err:
        raise fail(str(err)) from None
    source = "--pixel-size" if pixel_size else f"the resolution tags of {path}"
    size = pixel_size or (tiff_pixel_size(path) if path.suffix.lower() in (".tif", ".tiff") else None)
    if size and scale_factor(size, model_pixel_size(net), source, shape=image.shape[-2:]) != 1.0:
        console.print(f"{path}: {size:g} nm/px, {verb} the model's {model_pixel_size(net):g} nm/px", markup=False)
    return image, size


def _cell_probabilities(path: Path, image: np.ndarray, predict, display: ProgressDisplay, **kwargs) -> np.ndarray:
    """P(cell) of a (H, W) image or (S, H, W) stack from ``predict(stack, progress=..., **kwargs)`` -> (S, C, H, W),
    counting slices on `display`; a ValueError or TypeError of the prediction is a red error naming `path`."""
    stack = image if image.ndim == 3 else image[None]
    counter = display.counter(f"predicting {path.name}", len(stack), "slices")
    try:
        probs = predict(stack, progress=lambda _index: counter.advance(), **kwargs)
    except (ValueError, TypeError) as err:
        raise fail(f"{path}: {err}") from None
    return probs[:, 1] if image.ndim == 3 else probs[0, 1]


def _output_names(images: list[Path], uncertainty: bool = False) -> list[str]:
    """The files `predict` writes for `images` (one stem each); fails when two inputs share a stem."""
    seen: dict[str, Path] = {}
    for path in images:
        other = seen.setdefault(path.stem.casefold(), path)
        if other is not path:
            raise fail(
                f"{other} and {path} would both write {path.stem}_prob.tif, {path.stem}_mask.png, ...: "
                "rename one, or predict them into separate --out folders"
            )
    extra = [uncertainty_name(path.stem) for path in images] if uncertainty else []
    return [name for path in images for name in prediction_names(path.stem)] + extra


class _WithUncertainty:
    """`predict` for `_cell_probabilities` that also keeps the TTA uncertainty: ``(S, C, H, W)`` probabilities from
    `uncertainty_at_pixel_size`, the (S, H, W) uncertainty in `.uncertainty`."""

    def __init__(self, net, pixel_size: float | None):
        self.net, self.pixel_size = net, pixel_size
        self.uncertainty: np.ndarray | None = None

    def __call__(self, stack: np.ndarray, progress=None, tta: bool = True, **kwargs) -> np.ndarray:
        probs, self.uncertainty = uncertainty_at_pixel_size(self.net, stack, self.pixel_size, progress=progress, **kwargs)
        return probs


@app.command("predict")
def predict_command(
    model: opt.Model,
    images: list[Path] = typer.Argument(
        ..., help="TIFF (2-D or stacks) or PNG images, or one Zarr / OME-Zarr volume (see --out)"
    ),
    out: Path = opt.out_option(
        Path("preds"),
        "output folder; inputs whose names differ only in the suffix (a/ok.tif, b/ok.tiff) are refused, "
        "since their outputs would share a name (volumes: the output .zarr store)",
    ),
    tile: opt.Tile = 0,
    batch_size: opt.BatchSize = 4,
    device: opt.Device = None,
    tta: opt.Tta = False,
    uncertainty: bool = typer.Option(
        False,
        "--uncertainty",
        help="also write <stem>_uncertainty.tif: entropy of the probabilities averaged over the 8 rotations/flips "
        "(0 = sure, 1 = split), a map of where to label next; implies --tta",
    ),
    threshold: opt.Threshold = 0.5,
    backend: opt.Backend = "auto",
    precision: opt.Precision = "auto",
    workers: opt.Workers = None,
    scheduler: opt.Scheduler = "",
    block: opt.Block = None,
    level: int = typer.Option(None, "--level", help="volumes: OME-Zarr resolution level (default 0)"),
    uint8: bool = typer.Option(False, "--uint8", help="volumes: store probability x 255 as uint8 (default float32)"),
    overwrite: bool = opt.overwrite_option("replace existing outputs (images: their <stem>_* files; volumes: the output store)"),
    pixel_size: opt.PixelSize = None,
    quiet: opt.Quiet = False,
) -> None:
    """Segment images: writes <stem>_prob.tif (cell probability), <stem>_mask.png and <stem>_overlay.png.

    Images at another --pixel-size than the model's are predicted rescaled; the outputs have the images' size.

    A Zarr / OME-Zarr volume (or a TIFF stack with --out ending in .zarr) is predicted block by block into
    the Zarr store --out (cell probability), locally or on a dask cluster; see docs/volumes.md.
    """
    wanted = check_precision(precision)
    if pixel_size is not None:
        check_pixel_size(pixel_size, "--pixel-size")  # finite and plausible, before any work
    if is_volume_request(images, out):
        if uncertainty:
            raise fail("--uncertainty works on images (TIFF, PNG), not on Zarr volumes; drop it or predict TIFF slices")
        if backend not in ("auto", "torch"):
            raise fail("volumes run with --backend torch")
        return predict_volume_command(
            lambda: _load(model, device or None),
            images[0],
            out,
            device=device or None,
            tile=tile or None,
            batch_size=batch_size,
            tta=tta,
            block=block,
            level=level,
            uint8=uint8,
            overwrite=overwrite,
            workers=workers,
            scheduler=scheduler,
            precision=wanted,
            pixel_size=pixel_size,
            quiet=quiet,
        )

    for path in images:
        if not path.is_file():
            raise fail(f"no such image file: {path}")
        if path.suffix.lower() not in READABLE_SUFFIXES:
            raise fail(f"cannot read {path}: use one of {', '.join(READABLE_SUFFIXES)}")
    if out.suffix.lower() == ".zarr":
        raise fail(
            f"--out {out} names a Zarr store, which holds one volume, but {len(images)} inputs were given: "
            "predict one TIFF stack or Zarr volume per --out *.zarr, or give image outputs a folder not ending in .zarr"
        )
    check_output(out, "--out", folder=True, contents=_output_names(images, uncertainty), overwrite=overwrite)
    check_backend(backend, wanted, device)
    net = _load(model, "cpu" if backend in ("onnxruntime", "openvino") else device or None)
    choice = choose_path(net, backend, wanted)
    with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
        for path in images:
            image, size = _read_for_prediction(path, pixel_size, net, "rescaled to")
            spread = _WithUncertainty(net, size) if uncertainty else None
            cell_prob = _cell_probabilities(
                path,
                image,
                spread or functools.partial(predict_at_pixel_size, net, pixel_size=size),
                display,
                tile=tile or None,
                batch_size=batch_size,
                tta=tta or uncertainty,
                forward=choice.forward,
                precision=choice.precision,
            )
            written = write_prediction(
                out,
                path.stem,
                image,
                cell_prob,
                threshold=0.5 if threshold is None else threshold,
                metadata={"inference": choice.record()},
            )
            if spread is not None and spread.uncertainty is not None:
                values = spread.uncertainty if image.ndim == 3 else spread.uncertainty[0]
                written.append(write_prob_tiff(out / uncertainty_name(path.stem), values))
            shown = f"{', '.join(str(p) for p in written[:3])}{' ...' if len(written) > 3 else ''}"
            console.print(f"{path} -> {shown}", markup=False, highlight=False)


@app.command("evaluate")
def evaluate_command(
    model: opt.Model,
    data_dir: opt.DataDir = None,
    split: str = typer.Option("val", help="val (held-out fold), train or all"),
    fold: int = typer.Option(4, help="validation fold (contiguous block of slices)"),
    k: int = typer.Option(5, help="number of folds"),
    tta: opt.Tta = False,
    tile: opt.Tile = 0,
    batch_size: opt.BatchSize = 4,
    device: opt.Device = None,
    as_json: opt.Json = False,
    out: Path | None = opt.out_option(None, "also write the scores to this JSON file"),
    overwrite: bool = opt.overwrite_option("replace an existing --out file"),
    warping: bool = typer.Option(
        True, "--warping/--no-warping", help="compute the warping error (the slowest score, ~1 s per slice)"
    ),
    segment: bool = typer.Option(
        False, "--segment", help="also segment cells (unet-zoo segment's defaults) and score them beside the thresholded map"
    ),
    precision: opt.Precision = "auto",
    quiet: opt.Quiet = False,
) -> None:
    """ISBI 2012 scores on held-out training slices, beside the paper's Table 1."""
    if split not in ("val", "train", "all"):
        raise fail(f"--split must be val, train or all, got {split!r}")
    wanted = check_precision(precision)
    if out is not None:
        out = check_output(out, "--out", overwrite=overwrite)
    net = _load(model, device or None)
    choice = choose_path(net, "auto", wanted)
    try:
        num_slices = len(load_isbi(data_dir or None).images)  # (evaluate_isbi reads the 8 MB stack again)
        train_slices, held_out = split_slices(num_slices, k=k, fold=fold)
        count = {"val": len(held_out), "train": len(train_slices), "all": num_slices}[split]
        with ProgressDisplay(console, quiet=quiet) as display:
            counter = display.counter("predicting", count, "slices")

            def predicted(_index: int) -> None:
                counter.advance()
                if counter.done == count:  # the scores come next: the warping error takes about 1 s per slice
                    display.say(
                        f"scoring {count} slice{'s' if count != 1 else ''}{' (with the warping error)' if warping else ''}"
                    )

            result = evaluate_isbi(
                net,
                data_dir or None,
                split=split,
                fold=fold,
                k=k,
                tta=tta,
                tile=tile or None,
                batch_size=batch_size,
                progress=predicted,
                warping=warping,
                segment=segment,
                precision=choice.precision,
                forward=choice.forward,
            )
    except FileNotFoundError as err:
        raise fail(str(err)) from None
    except ValueError as err:
        raise fail(str(err)) from None
    result["model"] = model
    result["inference"] = choice.record()
    console.print(comparison_table(result, title=f"{model} on ISBI 2012 ({split}, slices {result['slices']})"))
    console.print(f"inference: {result['seconds_per_slice']:.2f} s per slice{' with TTA' if tta else ''} ({choice.path})")
    if segment:
        console.print(segmentation_table(result))
        console.print(f"segmentation: {result['segmentation']['seconds_per_slice']:.2f} s per slice")
    if out is not None:
        atomic_write_bytes(out, json.dumps(result, indent=2))
        console.print(f"metrics written to {out}", markup=False, highlight=False)
    if as_json:
        print_json(result)
