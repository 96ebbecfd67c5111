"""`unet-zoo predict MODEL volume.zarr --out out.zarr ...`: blockwise volume prediction (unet_zoo.volumes.predict)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from unet_zoo.cli.app import check_output, console, fail
from unet_zoo.cli.progress import ProgressDisplay
from unet_zoo.exporters.paths import choose_inference_path
from unet_zoo.inference.rescale import model_pixel_size, scale_factor
from unet_zoo.runtime.settings import Precision

ZARR_SUFFIXES = (".zarr", ".ome.zarr", ".n5")


def is_volume_request(inputs: list[Path], out: Path) -> bool:
    """A volume run: one input that is a folder (a Zarr store), or a TIFF stack written to a .zarr output."""
    if len(inputs) != 1:
        return False
    source = inputs[0]
    return source.is_dir() or source.suffix.lower() in ZARR_SUFFIXES or out.suffix.lower() == ".zarr"


def predict_volume_command(
    load: Callable[[], Any],
    source: Path,
    out: Path,
    *,
    device: str | None,
    tile: int | None,
    batch_size: int,
    tta: bool,
    block: int | None,
    level: int | None,
    uint8: bool,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    precision: Precision = "auto",
    pixel_size: float | None = None,
    quiet: bool = False,
) -> None:
    """Run unet_zoo.predict_volume with the model `load()` returns, counting blocks (none with `quiet`); errors exit 2."""
    if not source.exists():
        raise fail(f"no such file or folder: {source}")
    if out == Path("preds") or out.suffix.lower() != ".zarr":
        raise fail(f"--out must name the output Zarr store, e.g. --out {source.stem.split('.')[0]}-membranes.zarr")
    if workers is not None and scheduler:
        raise fail("use either --workers N (a local cluster) or --scheduler ADDRESS (an existing one), not both")
    check_output(out, "--out", folder=True)  # an existing store is checked (resume or --overwrite) by predict_volume
    try:
        from unet_zoo.volumes.predict import predict_volume
    except ImportError as err:
        raise fail(str(err)) from None
    net = load()
    try:  # volumes run torch: float32 or bf16, as measured for this architecture (cached) or as asked
        choice = choose_inference_path(net, backend="torch", precision=precision, build_forward=False)
    except ValueError as err:
        raise fail(str(err)) from None
    console.print(f"inference path: {choice.describe()}", markup=False, highlight=False)
    state: dict[str, int | None] = {"done": None, "total": None}

    def progress(done: int, total: int) -> None:
        if state["done"] is None and done:  # the first call: blocks kept from an unfinished run
            console.print(f"resuming {out}: {done} of {total} blocks were finished before and are kept", markup=False)
        state.update(done=done, total=total)
        counter.update(done, total)

    def resume() -> str:
        if not state["done"]:
            return "no block was finished; run the same command again to start over"
        return f"{state['done']} of {state['total']} blocks are finished and kept in {out}: run the same command again to resume"

    _say_rescaling(source, level, pixel_size, net)
    with ProgressDisplay(console, quiet=quiet) as display:
        counter = display.counter(f"predicting {source.name}", None, "blocks")
        try:
            written = predict_volume(
                net,
                source,
                out,
                block=block,
                tile=tile,
                tta=tta,
                dtype="uint8" if uint8 else "float32",
                overwrite=overwrite,
                scheduler=scheduler or None,
                workers=workers,
                level=level,
                batch_size=batch_size,
                device=device,
                progress=progress,
                precision=choice.precision,
                pixel_size=pixel_size,
            )
        except (FileNotFoundError, FileExistsError, ValueError, TypeError, ConnectionError, ImportError) as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            raise fail(f"interrupted; {resume()}", code=130) from None
        except Exception as err:  # noqa: BLE001  a failed block or a lost cluster, not the input (ValueError above)
            raise fail(f"{type(err).__name__}: {err}; {resume()}") from None
    console.print(f"{source} -> {written}", markup=False, highlight=False)


def _say_rescaling(source: Path, level: int | None, pixel_size: float | None, net: Any) -> None:
    """Print the volume's pixel size (--pixel-size, else its OME-Zarr scale) when it is rescaled to the model's."""
    from unet_zoo.volumes.io import open_source  # lazy: the optional volumes extra (zarr), as predict_volume above

    try:
        size = pixel_size or open_source(source, level).pixel_size_nm
    except (FileNotFoundError, ValueError, TypeError):
        return  # predict_volume reports the unreadable input
    if size and scale_factor(size, model_pixel_size(net)) != 1.0:
        console.print(f"{source}: {size:g} nm/px, rescaled to the model's {model_pixel_size(net):g} nm/px", markup=False)
