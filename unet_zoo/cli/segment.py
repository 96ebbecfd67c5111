"""`unet-zoo segment`: cells as label images (unet_zoo.segmentation), from images or from `predict`'s probabilities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import numpy as np
import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, console, fail, outputs_as_one_unit
from unet_zoo.cli.inference import (
    PredictorOptions,
    _load,
    check_options,
    make_predictor,
    predictor_options,
    read_input,
    section_counter,
)
from unet_zoo.cli.progress import Counter, ProgressDisplay
from unet_zoo.data.reading import READABLE_SUFFIXES, TIFF_SUFFIXES, read_image
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment_stack
from unet_zoo.segmentation.outputs import output_names, write_segmentation
from unet_zoo.utils.files import check_output_path

PROB_SUFFIX = "_prob"  # `predict` writes <stem>_prob.tif


def _params(model: object | None, **given: object) -> SegmentationParams:
    """The checkpoint's stored defaults (or the library's), with the options the user gave."""
    base = checkpoint_params(model)  # type: ignore[arg-type]
    chosen = {k: v for k, v in given.items() if v is not None}
    if chosen.pop("no_merge", False):
        chosen["merge_threshold"] = None
    try:
        return SegmentationParams.from_dict({**base.to_dict(), **chosen})
    except ValueError as err:
        raise fail(f"{err}; see `unet-zoo segment --help`") from None


def _check_inputs(images: list[Path], from_probabilities: bool) -> None:
    for path in images:
        if not path.is_file():
            raise fail(f"no such file: {path}")
        suffixes = TIFF_SUFFIXES if from_probabilities else READABLE_SUFFIXES
        if path.suffix.lower() not in suffixes:
            what = "probability TIFFs written by `unet-zoo predict` (<stem>_prob.tif)" if from_probabilities else "images"
            raise fail(
                f"cannot read {path}: --from-probabilities takes {what}"
                if from_probabilities
                else f"cannot read {path}: use one of {', '.join(READABLE_SUFFIXES)}"
            )


def _stem(path: Path, from_probabilities: bool) -> str:
    stem = path.stem
    return stem[: -len(PROB_SUFFIX)] if from_probabilities and stem.endswith(PROB_SUFFIX) else stem


@app.command("segment")
def segment_command(
    model: str = typer.Argument(
        ...,
        help="checkpoint name, folder or Hub id (its stored segmentation defaults are used); with --from-probabilities "
        "the model is not run, only its defaults are read ('default': the library's defaults)",
    ),
    images: list[Path] = typer.Argument(..., help="images (TIFF, PNG, JPEG; stacks per slice), or _prob.tif files"),
    out: Path = opt.out_option(Path("segments"), "output folder (volumes: the output .zarr store)"),
    from_probabilities: bool = typer.Option(
        False, "--from-probabilities", help="segment <stem>_prob.tif files that `unet-zoo predict` wrote (P(cell))"
    ),
    tile: opt.Tile = 0,
    batch_size: opt.BatchSize = 4,
    device: opt.Device = None,
    tta: opt.Tta = False,
    backend: opt.Backend = "auto",
    threshold: opt.OptionalThreshold = None,
    sigma: float = typer.Option(None, help="smoothing (px) of the distance transform before seeds are taken"),
    min_distance: int = typer.Option(None, "--min-distance", help="minimum distance (px) between seeds"),
    min_size: int = typer.Option(None, "--min-size", help="segments smaller than this (px) are dissolved"),
    merge_threshold: float = typer.Option(
        None, "--merge-threshold", help="merge neighbours whose shared boundary's mean P(membrane) is below this"
    ),
    no_merge: bool = typer.Option(False, "--no-merge", help="skip the agglomeration step"),
    segment_block: opt.SegmentBlock = None,
    halo: opt.Halo = None,
    overwrite: bool = opt.overwrite_option("replace existing outputs"),
    precision: opt.Precision = "auto",
    workers: opt.Workers = None,
    scheduler: opt.Scheduler = "",
    pixel_size: opt.PixelSize = None,
    quiet: opt.Quiet = False,
) -> None:
    """Segment cells: writes <stem>_labels.tif (uint32 cell IDs) and <stem>_segments.png (cells in colour).

    --threshold, --sigma, --min-distance, --min-size and --merge-threshold default to the checkpoint's stored
    values (lengths and areas in the model's pixels). A Zarr volume with --out ending in .zarr is segmented
    section by section into that Zarr store (IDs unique across the volume; an interrupted run resumes); with
    --pixel-size (or an OME-Zarr scale) it is predicted rescaled and segmented on its own grid, the lengths and
    areas converted; see docs/segmentation.md.
    """
    given = dict(
        threshold=threshold,
        sigma=sigma,
        min_distance=min_distance,
        min_size=min_size,
        merge_threshold=merge_threshold,
        no_merge=no_merge,
    )
    settings = predictor_options(backend, precision, device, tile, batch_size, tta, pixel_size)
    precision = settings["precision"]
    if len(images) == 1 and (images[0].is_dir() or out.suffix.lower() == ".zarr"):
        return _segment_volume_command(
            model,
            images[0],
            out,
            from_probabilities,
            given,
            settings=settings,
            block=segment_block,
            halo=halo,
            overwrite=overwrite,
            workers=workers,
            scheduler=scheduler or None,
            quiet=quiet,
        )
    if segment_block is not None or halo is not None or workers is not None or scheduler:
        if workers is not None or scheduler:
            raise fail("--workers and --scheduler are for volumes (a .zarr input or --out ending in .zarr)")
        raise fail("--segment-block and --halo are for volumes (a .zarr input or --out ending in .zarr)")
    _check_inputs(images, from_probabilities)
    stems = [_stem(p, from_probabilities) for p in images]
    if len(set(stems)) != len(stems):
        raise fail("two inputs have the same name; their outputs would overwrite each other: segment them separately")
    try:
        check_output_path(
            out,
            folder=True,
            contents=[n for s in stems for n in output_names(s)],
            overwrite=overwrite,
            overwrite_hint="pass --overwrite to replace it",
        )
    except OSError as err:
        raise fail(f"--out: {err}") from None
    check_options(backend, precision, device or "", pixel_size)
    if from_probabilities:
        if tta or tile or backend != "auto" or pixel_size is not None or precision != "auto":
            raise fail(
                "--tta, --tile, --backend, --precision and --pixel-size apply when the model runs; "
                "--from-probabilities does not run it"
            )
        net = None if model == "default" else _load(model, "cpu")
        params = _params(net, **given)
        with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
            for path, stem in zip(images, stems):
                prob = _read_probabilities(path)
                counter = display.counter(f"segmenting {path.name}", len(prob) if prob.ndim == 3 else 1, "sections")
                labels = segment_stack(prob, params, progress=_advancing(counter))
                _write(prob, labels, out, stem, path)
        return
    predictor = make_predictor(model, **settings)
    params = _params(predictor.model, **given)
    with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
        for path, stem in zip(images, stems):
            image = read_input(path, predictor, "segmented at")
            counter = display.counter(f"segmenting {path.name}", len(image.sections), "sections")
            try:
                cells = predictor.run(image, segment=params, progress=section_counter(counter)).labels
            except (ValueError, TypeError) as err:
                raise fail(f"{path}: {err}") from None
            assert cells is not None  # segment was asked for
            _write(np.asarray(image.pixels), cells, out, stem, path)


def _advancing(counter: Counter) -> Callable[[int], None]:
    """A `segment_stack` progress callback that advances `counter` once per finished section."""

    def progress(_index: int) -> None:
        counter.advance()

    return progress


def _read_probabilities(path: Path) -> np.ndarray:
    """A P(cell) map `unet-zoo predict` wrote (float32 in [0, 1]); anything else is a red error."""
    try:
        prob = np.asarray(read_image(path))
    except (ValueError, OSError) as err:
        raise fail(str(err)) from None
    if prob.dtype.kind != "f" or not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
        found = "NaN or infinite values" if prob.dtype.kind == "f" and not np.isfinite(prob).all() else "other values"
        raise fail(
            f"{path} is not a probability map (float32 in [0, 1], as `unet-zoo predict` writes _prob.tif): it "
            f"holds {found}; predict it again with `unet-zoo predict`"
        )
    return prob


class _VolumeOptions(TypedDict):
    """How `segment_volume` runs (unet_zoo.segmentation.volume.segment_volume's keyword arguments)."""

    block: int
    halo: int
    overwrite: bool
    progress: Callable[[str, int, int], None]
    workers: int | None
    scheduler: str | None


def _segment_volume_command(
    model: str,
    source: Path,
    out: Path,
    from_probabilities: bool,
    given: dict,
    *,
    settings: PredictorOptions,
    block: int | None,
    halo: int | None,
    overwrite: bool,
    workers: int | None = None,
    scheduler: str | None = None,
    quiet: bool = False,
) -> None:
    """`unet-zoo segment MODEL volume.zarr --out seg.zarr`: `Predictor.segment_volume` (with
    --from-probabilities: unet_zoo.segmentation.volume.segment_volume of the P(cell) volume), counting blocks and
    sections (nothing with `quiet`). `settings`: the predictor's options (backend, precision, device, tile, ...)."""
    try:
        from unet_zoo.segmentation.volume import (  # lazy: needs the optional zarr extra
            check_volume_output,
            probabilities_path,
            segment_volume,
        )
        from unet_zoo.volumes.io import check_not_nested, open_source
    except ImportError as err:
        raise fail(str(err)) from None
    if not source.exists():
        raise fail(f"no such file or folder: {source}")
    if out.suffix.lower() != ".zarr":
        raise fail(f"--out must name the output Zarr store for a volume, e.g. --out {source.stem.split('.')[0]}-cells.zarr")
    if from_probabilities and (settings["tta"] or settings["tile"] or settings["pixel_size"]):
        raise fail("--tta, --tile and --pixel-size apply when the model runs; --from-probabilities does not run it")
    if settings["backend"] not in ("auto", "torch"):
        raise fail("volumes run with --backend torch")
    check_options(settings["backend"], settings["precision"], settings["device"], settings["pixel_size"])
    try:  # before the model is loaded and anything is predicted
        check_volume_output(out, overwrite=overwrite, predicts=not from_probabilities)
    except OSError as err:
        raise fail(f"--out: {err}") from None
    try:
        volume = open_source(source)
        check_not_nested(volume, out)
        if not from_probabilities:
            check_not_nested(volume, probabilities_path(out))
    except (ValueError, TypeError) as err:
        raise fail(f"--out: {err}" if "output" in str(err) else str(err)) from None
    if from_probabilities:
        predictor, net = None, None if model == "default" else _load(model, "cpu")
    else:
        predictor = make_predictor(model, say_path=False, **settings)
        net = predictor.model
    params = _params(net, **given)
    stage = {"now": "predict" if not from_probabilities else "segment"}

    def resume_advice() -> str:
        if stage["now"] == "predict":
            return f"finished blocks are kept in {probabilities_path(out)}; run the same command again to resume"
        return f"finished sections are kept in {out}; run the same command again to resume"

    with ProgressDisplay(console, quiet=quiet) as display:
        counters: dict[str, Counter] = {}

        def progress(stage_name: str, done: int, total: int) -> None:
            stage["now"] = stage_name
            if stage_name not in counters:
                what = ("predicting", "blocks") if stage_name == "predict" else ("segmenting", "sections")
                counters[stage_name] = display.counter(f"{what[0]} {source.name}", total, what[1])
            counters[stage_name].update(done, total)

        try:
            options = _VolumeOptions(
                block=block or 1024,
                halo=64 if halo is None else halo,
                overwrite=overwrite,
                progress=progress,
                workers=workers,
                scheduler=scheduler,
            )
            if predictor is None:
                written = segment_volume(source, out, params, **options)
            else:
                written = predictor.segment_volume(source, out, params, **options)
        except (FileExistsError, FileNotFoundError, ValueError, OverflowError, ConnectionError) as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            raise fail(f"interrupted: {resume_advice()}", 130) from None
        except OSError as err:  # e.g. a full disk: what is finished is kept
            raise fail(f"{err.strerror or err} ({err.filename or out}); {resume_advice()}") from None
    if not from_probabilities:
        console.print(f"probabilities: {probabilities_path(written)}", markup=False, highlight=False)
    console.print(f"{source} -> {written}", markup=False, highlight=False)


def _write(image: np.ndarray, labels: np.ndarray, out: Path, stem: str, path: Path) -> None:
    """Write the (H, W) or (S, H, W) cells of `image` and say where."""
    written = write_segmentation(out, stem, image, labels)
    shown = f"{path} -> {written[0]} ({int(labels.max())} cells), {written[1]}{' ...' if len(written) > 2 else ''}"
    console.print(shown, markup=False, highlight=False)


__all__ = ["segment_command"]
