"""`unet-zoo segment`: cells as label images (unet_zoo.segmentation), from images or from `predict`'s probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, console, fail, outputs_as_one_unit
from unet_zoo.cli.inference import (
    _cell_probabilities,
    _load,
    _read_for_prediction,
    check_backend,
    check_precision,
    choose_path,
)
from unet_zoo.cli.progress import Counter, ProgressDisplay
from unet_zoo.data.images import READABLE_SUFFIXES, TIFF_SUFFIXES, read_image
from unet_zoo.data.pixel_size import check_pixel_size
from unet_zoo.inference.rescale import model_pixel_size, rescale_stack, scale_factor
from unet_zoo.inference.tiling import predict_stack
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment_probabilities
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
    threshold: opt.Threshold = None,
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
    wanted = check_precision(precision)
    if pixel_size is not None:
        check_pixel_size(pixel_size, "--pixel-size")  # finite and plausible, before any work
    if len(images) == 1 and (images[0].is_dir() or out.suffix.lower() == ".zarr"):
        if wanted == "bf16":
            raise fail("--precision bf16 applies to images; volumes are segmented in float32")
        return _segment_volume_command(
            model,
            images[0],
            out,
            from_probabilities,
            given,
            tile=tile or None,
            batch_size=batch_size,
            device=device or None,
            tta=tta,
            block=segment_block,
            halo=halo,
            overwrite=overwrite,
            workers=workers,
            scheduler=scheduler or None,
            pixel_size=pixel_size,
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
    check_backend(backend, wanted, device)
    if from_probabilities:
        if tta or tile or backend != "auto" or pixel_size is not None or wanted != "auto":
            raise fail(
                "--tta, --tile, --backend, --precision and --pixel-size apply when the model runs; "
                "--from-probabilities does not run it"
            )
        net = None if model == "default" else _load(model, "cpu")
        params = _params(net, **given)
        with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
            for path, stem in zip(images, stems):
                try:
                    prob = read_image(path)
                except (ValueError, OSError) as err:
                    raise fail(str(err)) from None
                if prob.dtype.kind != "f" or not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
                    found = "NaN or infinite values" if prob.dtype.kind == "f" and not np.isfinite(prob).all() else "other values"
                    raise fail(
                        f"{path} is not a probability map (float32 in [0, 1], as `unet-zoo predict` writes _prob.tif): it "
                        f"holds {found}; predict it again with `unet-zoo predict`"
                    )
                _segment_and_write(prob, prob, params, out, stem, path, display)
        return
    net = _load(model, "cpu" if backend in ("onnxruntime", "openvino") else device or None)
    params = _params(net, **given)
    choice = choose_path(net, backend, wanted)
    with outputs_as_one_unit(out), ProgressDisplay(console, quiet=quiet) as display:
        for path, stem in zip(images, stems):
            image, size = _read_for_prediction(path, pixel_size, net, "segmented at")
            factor = scale_factor(size, model_pixel_size(net))  # checked with the image's size by _read_for_prediction
            cell_prob = _cell_probabilities(
                path,
                image,
                lambda stack, **kwargs: predict_stack(net, rescale_stack(stack, factor), **kwargs),  # noqa: B023  called at once
                display,
                tile=tile or None,
                batch_size=batch_size,
                tta=tta,
                forward=choice.forward,
                precision=choice.precision,
            )
            _segment_and_write(image, cell_prob, params, out, stem, path, display)


def _segment_volume_command(
    model: str,
    source: Path,
    out: Path,
    from_probabilities: bool,
    given: dict,
    *,
    tile: int | None,
    batch_size: int,
    device: str | None,
    tta: bool,
    block: int | None,
    halo: int | None,
    overwrite: bool,
    workers: int | None = None,
    scheduler: str | None = None,
    pixel_size: float | None = None,
    quiet: bool = False,
) -> None:
    """`unet-zoo segment MODEL volume.zarr --out seg.zarr`: unet_zoo.segmentation.volume.segment_volume, counting
    blocks and sections (nothing with `quiet`)."""
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
    if from_probabilities and (tta or tile or pixel_size):
        raise fail("--tta, --tile and --pixel-size apply when the model runs; --from-probabilities does not run it")
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
    net = None if from_probabilities and model == "default" else _load(model, "cpu" if from_probabilities else device)
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
            written = segment_volume(
                source,
                out,
                params,
                model=None if from_probabilities else net,
                block=block or 1024,
                halo=64 if halo is None else halo,
                tta=tta,
                tile=tile,
                batch_size=batch_size,
                device=device,
                overwrite=overwrite,
                progress=progress,
                workers=workers,
                scheduler=scheduler,
                pixel_size=pixel_size,
            )
        except (FileExistsError, FileNotFoundError, ValueError, OverflowError, ConnectionError) as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            raise fail(f"interrupted: {resume_advice()}", 130) from None
        except OSError as err:  # e.g. a full disk: what is finished is kept
            raise fail(f"{err.strerror or err} ({err.filename or out}); {resume_advice()}") from None
    if not from_probabilities:
        console.print(f"probabilities: {probabilities_path(written)}", markup=False, highlight=False)
    console.print(f"{source} -> {written}", markup=False, highlight=False)


def _segment_and_write(
    image: np.ndarray,
    cell_prob: np.ndarray,
    params: SegmentationParams,
    out: Path,
    stem: str,
    path: Path,
    display: ProgressDisplay,
) -> None:
    """Segment a (H, W) or (S, H, W) P(cell) map (IDs unique across a stack), counting sections on `display`, and
    write the files."""
    sections = cell_prob if cell_prob.ndim == 3 else cell_prob[None]
    counter = display.counter(f"segmenting {path.name}", len(sections), "sections")
    parts, offset = [], 0
    for section in sections:
        part = segment_probabilities(section.astype(np.float32), params)
        parts.append(part + np.uint32(offset))
        offset += int(part.max())
        counter.advance()
    labels = np.stack(parts) if cell_prob.ndim == 3 else parts[0]
    if labels.shape != image.shape:  # segmented at the model's pixel size: the cells back on the image's grid
        from skimage.transform import resize  # scikit-image: a core dependency, imported where it is used

        labels = resize(labels, image.shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint32)
    written = write_segmentation(out, stem, image, labels)
    shown = f"{path} -> {written[0]} ({int(labels.max())} cells), {written[1]}{' ...' if len(written) > 2 else ''}"
    console.print(shown, markup=False, highlight=False)


__all__ = ["segment_command"]
