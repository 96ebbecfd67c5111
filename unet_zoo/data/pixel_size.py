"""One validation of a pixel size, whatever it came from, and of the scale factor it leads to.

A pixel size reaches unet_zoo from ``--pixel-size``, a TIFF's resolution tags, an OME-Zarr scale or a model
card's ``pixel_size_nm``; every reader passes it through `check_pixel_size`, and every rescaling through
`check_scale`, so NaN, infinity, zero, a negative size or a mis-tagged file (1e5 nm/px in an EM image) is
refused with a message naming where the value came from, before any pixel is allocated.

Bounds (docs/security.md): a pixel size lies in [`MIN_PIXEL_SIZE_NM`, `MAX_PIXEL_SIZE_NM`] nm; an image is
enlarged or shrunk by at most `MAX_SCALE_FACTOR`; a rescaled section has at most `MAX_RESCALED_PIXELS`
pixels and at least `MIN_RESCALED_SIDE` pixels along each side.
"""

from __future__ import annotations

import math
from typing import Any

from unet_zoo.utils.errors import InputError

MIN_PIXEL_SIZE_NM = 0.01  # 0.1 Angstrom: below any microscope's pixel
MAX_PIXEL_SIZE_NM = 100_000.0  # 100 um per pixel: above any image a U-Net of cells is run on
MAX_SCALE_FACTOR = 64.0  # enlarge or shrink an image by at most this much to reach the model's pixel size
MAX_RESCALED_PIXELS = 1 << 28  # pixels of one rescaled section (16384 x 16384: 1 GiB as float32)
MIN_RESCALED_SIDE = 16  # pixels along each side of a rescaled section (smaller: nothing left to segment)


class PixelSizeError(InputError):
    """A pixel size (or the rescaling it asks for) that is not finite, not positive or not plausible."""


def check_pixel_size(value: Any, source: str) -> float:
    """`value` as a float in nm per pixel; PixelSizeError naming `source` ("--pixel-size", "the resolution tags
    of a.tif", ...) unless it is a finite number in [MIN_PIXEL_SIZE_NM, MAX_PIXEL_SIZE_NM]."""
    hint = "pass the right size with --pixel-size NM" if source != "--pixel-size" else "give the image's nm per pixel"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PixelSizeError(f"{source}: the pixel size must be a number of nm, got {value!r}; {hint}")
    size = float(value)
    if not math.isfinite(size) or size <= 0:
        raise PixelSizeError(f"{source}: the pixel size must be a finite number of nm > 0, got {size!r}; {hint}")
    if not MIN_PIXEL_SIZE_NM <= size <= MAX_PIXEL_SIZE_NM:
        raise PixelSizeError(
            f"{source}: a pixel size of {size:g} nm is implausible (unet_zoo accepts {MIN_PIXEL_SIZE_NM:g} to "
            f"{MAX_PIXEL_SIZE_NM:g} nm); {hint}"
        )
    return size


def check_scale(
    pixel_size: float, target: float, source: str, shape: tuple[int, int] | None = None, target_source: str = "the model"
) -> float:
    """The factor (pixel_size / target) an image at `pixel_size` nm is enlarged by to reach `target` nm, after
    both sizes are checked; PixelSizeError naming `source` when it is beyond `MAX_SCALE_FACTOR` either way, or
    when the (H, W) `shape` rescaled would exceed `MAX_RESCALED_PIXELS` or fall below `MIN_RESCALED_SIDE`."""
    size = check_pixel_size(pixel_size, source)
    goal = check_pixel_size(target, f"the pixel size of {target_source}")
    factor = size / goal
    if not 1 / MAX_SCALE_FACTOR <= factor <= MAX_SCALE_FACTOR:
        raise PixelSizeError(
            f"{source}: {size:g} nm/px would rescale the image by {factor:.3g} to the {goal:g} nm/px of {target_source}, "
            f"beyond the {MAX_SCALE_FACTOR:g}x unet_zoo allows either way; check the pixel size (--pixel-size NM overrides "
            "the file's), or use a model trained nearer that size"
        )
    if shape is not None:
        height, width = (max(1, round(n * factor)) for n in shape)
        if height * width > MAX_RESCALED_PIXELS:
            raise PixelSizeError(
                f"{source}: at {size:g} nm/px the {shape[0]}x{shape[1]} image would become {height}x{width} pixels at the "
                f"model's {goal:g} nm/px, more than {MAX_RESCALED_PIXELS:,}; crop it, or check the pixel size"
            )
        if min(height, width) < MIN_RESCALED_SIDE:
            raise PixelSizeError(
                f"{source}: at {size:g} nm/px the {shape[0]}x{shape[1]} image would shrink to {height}x{width} pixels at "
                f"the model's {goal:g} nm/px, fewer than {MIN_RESCALED_SIDE} per side; check the pixel size"
            )
    return factor


__all__ = [
    "MAX_PIXEL_SIZE_NM",
    "MAX_RESCALED_PIXELS",
    "MAX_SCALE_FACTOR",
    "MIN_PIXEL_SIZE_NM",
    "MIN_RESCALED_SIDE",
    "PixelSizeError",
    "check_pixel_size",
    "check_scale",
]
