"""`unet-zoo predict` and `unet-zoo evaluate`: parse, run a `unet_zoo.Predictor`, print (and write) what it returns."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import numpy as np
import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_device, check_output, console, fail, outputs_as_one_unit, print_json
from unet_zoo.cli.progress import Counter, ProgressDisplay
from unet_zoo.cli.tables import comparison_table, segmentation_table
from unet_zoo.cli.volumes import is_volume_request, predict_volume_command
from unet_zoo.data.images import prediction_names, uncertainty_name, write_prediction, write_prob_tiff
from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.data.reading import READABLE_SUFFIXES, Image
from unet_zoo.data.split import split_slices
from unet_zoo.experiments.isbi2012.data import load_isbi
from unet_zoo.experiments.isbi2012.evaluation import evaluate_isbi
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.pretrained import CheckpointError, HubAccessError
from unet_zoo.pipeline import Predictor, check_settings
from unet_zoo.runtime.measured import INFERENCE_PATH_ENV
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.files import atomic_write_bytes

_OPTION_WORDS = re.compile(r"\b(backend|precision|device)\b(?= )")  # check_settings' words -> the options


def _load(model: str, device: str | None):
    if device:
        check_device(device)
    try:
        return from_pretrained(model, device=resolve_device(device), allow_architecture=True)
    except (CheckpointError, HubAccessError) as err:  # not cached offline, bad token, tampered file, ...
        raise fail(str(err)) from None
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        raise fail(str(err.args[0] if err.args else err)) from None


def check_options(backend: str, precision: str, device: str, pixel_size: float | None = None) -> None:
    """--backend, --precision, --device and --pixel-size as `unet_zoo.Predictor` takes them; else a red error, exit
    2, before any work."""
    if pixel_size is not None:
        check_pixel_size(pixel_size, "--pixel-size")  # finite and plausible
    try:
        check_settings(backend, precision, device or None)
    except ValueError as err:
        text = str(err)
        raise fail(text if INFERENCE_PATH_ENV in text else _OPTION_WORDS.sub(r"--\1", text)) from None


class PredictorOptions(TypedDict):
    """The options of a command that runs a model, as `make_predictor` takes them."""

    backend: str
    precision: str
    device: str  # "": the default device
    tile: int | None
    batch_size: int
    tta: bool
    pixel_size: float | None


def predictor_options(
    backend: str,
    precision: str | None,
    device: str | None,
    tile: int,
    batch_size: int,
    tta: bool,
    pixel_size: float | None,
) -> PredictorOptions:
    """A command's model options as given on the command line (precision None: "auto"; device None: the default;
    tile 0: the model's)."""
    return PredictorOptions(
        backend=backend,
        precision=precision or "auto",
        device=device or "",
        tile=tile or None,
        batch_size=batch_size,
        tta=tta,
        pixel_size=pixel_size,
    )


def make_predictor(
    model: str,
    *,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "",
    tile: int | None = None,
    batch_size: int = 4,
    tta: bool = False,
    pixel_size: float | None = None,
    say_path: bool = True,
) -> Predictor:
    """The `unet_zoo.Predictor` of MODEL with the command's options (as `Predictor` takes them; `device` ""
    for the default); says which inference path runs and why (unless `say_path` is False: volumes say their own).
    A model that cannot load, a missing backend or a combination with no path is a red error, exit 2."""
    check_options(backend, precision, device, pixel_size)
    if device:
        check_device(device)
    try:
        predictor = Predictor(
            model,
            backend=backend,
            precision=precision,
            tta=tta,
            tile=tile,
            batch_size=batch_size,
            pixel_size=pixel_size,
            device=device or None,
            log=_measuring,
        )
    except (CheckpointError, HubAccessError) as err:  # not cached offline, bad token, tampered file, ...
        raise fail(str(err)) from None
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        raise fail(str(err.args[0] if err.args else err)) from None
    if not say_path:
        return predictor
    try:
        choice = predictor.choice
    except ImportError as err:  # names the extra to install
        raise fail(str(err)) from None
    except ValueError as err:
        raise fail(str(err) if INFERENCE_PATH_ENV in str(err) else _OPTION_WORDS.sub(r"--\1", str(err))) from None
    except Exception as err:  # noqa: BLE001  the exporter rejects the model: say so, keep torch as the way out
        raise fail(f"cannot run {model} with --backend {backend} ({err}); use --backend torch") from None
    console.print(f"inference path: {choice.describe()}", markup=False, highlight=False)
    return predictor


def _measuring(message: str) -> None:
    console.print(f"first run of this model here: {message}", markup=False, highlight=False)


def read_input(path: Path, predictor: Predictor, verb: str) -> Image:
    """The image of `path` with its pixel size (--pixel-size, else the file's); says when it is rescaled to the
    model's pixel size (`verb`: "rescaled to", "segmented at"). A bad file or pixel size is a red error."""
    try:
        image = predictor.read(path)
        factor = predictor.scale(image)
    except (ValueError, OSError) as err:
        raise fail(str(err)) from None
    if factor != 1.0:
        size, model_size = image.pixel_size_nm, predictor.model_pixel_size
        console.print(f"{path}: {size:g} nm/px, {verb} the model's {model_size:g} nm/px", markup=False)
    return image


def section_counter(counter: Counter) -> Callable[[int, int, int, int], None]:
    """A `Predictor` progress callback that advances `counter` once per finished section."""

    def progress(_section: int, _sections: int, done: int, total: int) -> None:
        if done == total:
            counter.advance()

    return progress


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
    settings = predictor_options(backend, precision, device, tile, batch_size, tta, pixel_size)
    check_options(backend, settings["precision"], settings["device"], pixel_size)
    if is_volume_request(images, out):
        if uncertainty:
            raise fail("--uncertainty works on images (TIFF, PNG), not on Zarr volumes; drop it or predict TIFF slices")
        if backend not in ("auto", "torch"):
            raise fail("volumes run with --backend torch")
        return predict_volume_command(
            lambda: make_predictor(model, say_path=False, **settings),
            images[0],
            out,
            block=block,
            level=level,
            uint8=uint8,
            overwrite=overwrite,
            workers=workers,
            scheduler=scheduler,
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
    predictor = make_predictor(model, **settings)
    with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
        for path in images:
            image = read_input(path, predictor, "rescaled to")
            counter = display.counter(f"predicting {path.name}", len(image.sections), "slices")
            try:
                result = predictor.run(image, uncertainty=uncertainty, progress=section_counter(counter))
            except (ValueError, TypeError) as err:
                raise fail(f"{path}: {err}") from None
            pixels = np.asarray(image.pixels)
            written = write_prediction(out, path.stem, pixels, result.cell, threshold=threshold, metadata=result.record)
            if result.uncertainty is not None:
                written.append(write_prob_tiff(out / uncertainty_name(path.stem), result.uncertainty))
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
    backend: opt.Backend = "auto",
    pixel_size: opt.PixelSize = None,
    quiet: opt.Quiet = False,
) -> None:
    """ISBI 2012 scores on held-out training slices, beside the paper's Table 1.

    --pixel-size takes the slices as if at that many nm per pixel: they are rescaled to the model's pixel size."""
    if split not in ("val", "train", "all"):
        raise fail(f"--split must be val, train or all, got {split!r}")
    precision = precision or "auto"
    check_options(backend, precision, device or "", pixel_size)
    if out is not None:
        out = check_output(out, "--out", overwrite=overwrite)
    predictor = make_predictor(
        model,
        backend=backend,
        precision=precision,
        device=device or "",
        tta=tta,
        tile=tile or None,
        batch_size=batch_size,
        pixel_size=pixel_size,
    )
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
                predictor.model,
                data_dir or None,
                split=split,
                fold=fold,
                k=k,
                progress=predicted,
                warping=warping,
                segment=segment,
                predictor=predictor,
            )
    except FileNotFoundError as err:
        raise fail(str(err)) from None
    except ValueError as err:
        raise fail(str(err)) from None
    choice = predictor.choice
    result["model"] = model
    result["inference"] = choice.record()
    if pixel_size is not None:
        result["pixel_size_nm"] = pixel_size
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
