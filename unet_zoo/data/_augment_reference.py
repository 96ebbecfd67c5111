"""The scipy.ndimage reference for elastic deformation: one (H, W) tile at a time, on the CPU.

It defines what `unet_zoo.data.augment.elastic_deform` computes, and is what the torch path is tested
and benchmarked against. Conventions shared with the torch path:

- a displacement field is (2, H, W) float, in pixels: channel 0 moves rows (y), channel 1 columns
  (x); the output pixel (y, x) is read from the input at (y + dy, x + dx) (backward mapping);
- reads outside the image are mirrored about the edge pixels (scipy mode "mirror", numpy pad mode
  "reflect", torch grid_sample padding "reflection" with align_corners=True);
- image: cubic (scipy's cubic B-spline, order 3) or linear; label: nearest (order 0); weight: linear.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_ORDERS = {"nearest": 0, "bilinear": 1, "bicubic": 3}


def random_displacement_reference(
    h: int, w: int, grid: int = 3, sigma: float = 10.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(2, H, W) float32 displacement in pixels: a (2, grid, grid) N(0, sigma^2) field upsampled cubically.

    The coarse grid's corner nodes sit on the image's corner pixels (scipy zoom, grid_mode=False). The
    spline differs slightly from torch's bicubic convolution; tests feed both paths the same field.
    """
    rng = rng or np.random.default_rng()
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    field = ndimage.zoom(coarse, (1, h / grid, w / grid), order=3, mode="nearest", grid_mode=False)
    if field.shape != (2, h, w):
        raise ValueError(f"cannot upsample a {grid}x{grid} grid to {h}x{w}")
    return field.astype(np.float32)


def warp_reference(array: np.ndarray, displacement: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """Resample a (H, W) array at (y + dy, x + dx) with mirrored borders; same dtype as `array`.

    mode: "nearest" (labels: values are copied, never mixed), "bilinear" or "bicubic".
    """
    if array.ndim != 2 or displacement.shape != (2, *array.shape):
        raise ValueError(f"need a (H, W) array and a (2, H, W) field, got {array.shape} and {displacement.shape}")
    order = _ORDERS[mode]
    yy, xx = np.meshgrid(np.arange(array.shape[0]), np.arange(array.shape[1]), indexing="ij")
    coords = np.stack([yy + displacement[0], xx + displacement[1]])
    source = array.astype(np.float64) if order else array
    out = ndimage.map_coordinates(source, coords, order=order, mode="mirror")
    return out.astype(array.dtype, copy=False)


def elastic_deform_reference(
    image: np.ndarray,
    label: np.ndarray | None,
    weight: np.ndarray | None,
    displacement: np.ndarray,
    image_mode: str = "bicubic",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Deform one tile: image (H, W) float (cubic or linear), label (H, W) int (nearest), weight (H, W) float
    (linear), all by the same (2, H, W) pixel displacement. None entries are passed through."""
    out_image = warp_reference(image, displacement, image_mode)
    out_label = None if label is None else warp_reference(label, displacement, "nearest")
    out_weight = None if weight is None else warp_reference(weight, displacement, "bilinear")
    return out_image, out_label, out_weight


__all__ = ["elastic_deform_reference", "random_displacement_reference", "warp_reference"]
