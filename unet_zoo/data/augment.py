"""The paper's data augmentation, batched in torch on any device: elastic deformation, shifts,
rotations, flips and grey-value variations, and the overlap-tile training tile sampler.

Elastic deformation (paper, section 3.1): displacement vectors on a coarse `grid` x `grid` grid
(3 x 3) drawn from N(0, sigma^2) (sigma = 10 pixels), upsampled bicubically to one displacement per
pixel. Conventions (shared with the scipy reference in `unet_zoo.data._augment_reference`):

- a displacement field is (N, 2, H, W) float32 in pixels; channel 0 moves rows (y), channel 1
  columns (x); output pixel (y, x) reads the input at (y + dy, x + dx);
- the coarse grid's corner nodes sit on the corner pixels (``align_corners=True``);
- reads beyond the border are mirrored about the edge pixels (numpy ``reflect`` padding, scipy
  ``mirror``, torch ``grid_sample(padding_mode="reflection", align_corners=True)``);
- the image is resampled bicubically (torch's cubic convolution, a = -0.75; ``image_mode="bilinear"``
  is available), labels with nearest neighbour (they stay labels), weight maps bilinearly.

Reproducibility: every random draw comes from the `torch.Generator` passed in, which must live on
the device the tensors are on (``torch.Generator(device="cuda")`` for CUDA tensors). The same seed
on the same device gives the same batch; CPU and CUDA generators give different streams.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ImageMode = str  # "bicubic" | "bilinear"


# --- displacement fields and warping ---------------------------------------------------------------


def random_displacement(
    n: int,
    h: int,
    w: int,
    grid: int = 3,
    sigma: float = 10.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(N, 2, H, W) float32 per-pixel displacements in pixels (channel 0: rows, 1: columns).

    A (N, 2, grid, grid) field of N(0, sigma^2) vectors, upsampled with bicubic interpolation
    (corner nodes on the corner pixels). `device` defaults to the generator's device.
    """
    if grid < 2:
        raise ValueError(f"the coarse grid needs at least 2 x 2 nodes, got grid={grid}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    coarse = torch.randn((n, 2, grid, grid), generator=generator, device=device, dtype=torch.float32) * sigma
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)


def _normalise(yx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, Ho, Wo, 2) pixel coordinates (y, x) -> grid_sample's (x, y) in [-1, 1] (align_corners=True)."""
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=yx.device, dtype=yx.dtype)
    return yx.flip(-1) * scale - 1.0


def warp(t: torch.Tensor, yx: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample (N, C, H, W) `t` at pixel coordinates `yx` (N, Ho, Wo, 2: y, x) with mirrored borders.

    mode: "nearest", "bilinear" or "bicubic". Integer/bool tensors are sampled as float and cast back
    (exact for values below 2**24; use "nearest" for labels). Returns (N, C, Ho, Wo), dtype of `t`.
    """
    dtype = t.dtype
    source = t if torch.is_floating_point(t) else t.float()
    grid = _normalise(yx.to(source.dtype), t.shape[-2], t.shape[-1])
    out = F.grid_sample(source, grid, mode=mode, padding_mode="reflection", align_corners=True)
    if not torch.is_floating_point(t):
        out = out.round().to(dtype)
    return out


def pixel_coordinates(n: int, h: int, w: int, device: torch.device | str) -> torch.Tensor:
    """(N, H, W, 2) float32 identity coordinates (y, x) in pixels."""
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).expand(n, h, w, 2)


def _check_nchw(name: str, t: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"elastic_deform: {name} must be a (N, C, H, W) tensor, got {shape}; add axes with t[:, None]")
    if like is not None and (t.shape[0] != like.shape[0] or t.shape[-2:] != like.shape[-2:]):
        raise ValueError(f"elastic_deform: {name} {tuple(t.shape)} does not match image {tuple(like.shape)} in N, H, W")


def elastic_deform(
    image: torch.Tensor,
    label: torch.Tensor | None,
    weight: torch.Tensor | None,
    grid: int = 3,
    sigma: float = 10.0,
    generator: torch.Generator | None = None,
    displacement: torch.Tensor | None = None,
    *,
    image_mode: ImageMode = "bicubic",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Elastically deform a batch: image (N, C, H, W) float, label (N, C', H, W) any dtype, weight (N, C'', H, W) float.

    All three are warped by the same field: `displacement` (N, 2, H, W) pixels if given, else
    `random_displacement(N, H, W, grid, sigma, generator)` on the image's device. The image is
    resampled with `image_mode` ("bicubic" or "bilinear"; bicubic may overshoot the input range
    slightly), the label with nearest neighbour (same dtype, only values it had), the weight
    bilinearly. label/weight may be None. sigma=0 without `displacement` returns the inputs themselves.
    """
    _check_nchw("image", image)
    for name, t in (("label", label), ("weight", weight)):
        if t is not None:
            _check_nchw(name, t, image)
    if image_mode not in ("bicubic", "bilinear"):
        raise ValueError(f"image_mode must be 'bicubic' or 'bilinear', got {image_mode!r}")
    n, _, h, w = image.shape
    if displacement is None:
        if sigma == 0:
            return image, label, weight
        if generator is not None and generator.device.type != image.device.type:
            raise ValueError(
                f"elastic_deform: the generator is on {generator.device} but the image on {image.device}; "
                f"use torch.Generator(device={str(image.device)!r}).manual_seed(seed)"
            )
        displacement = random_displacement(n, h, w, grid, sigma, generator, image.device)
    elif displacement.shape != (n, 2, h, w):
        raise ValueError(f"displacement must be (N, 2, H, W) = {(n, 2, h, w)}, got {tuple(displacement.shape)}")
    yx = pixel_coordinates(n, h, w, image.device) + displacement.to(image.device, torch.float32).permute(0, 2, 3, 1)
    out_image = warp(image, yx, image_mode if torch.is_floating_point(image) else "nearest")
    out_label = None if label is None else warp(label, yx, "nearest")
    out_weight = None if weight is None else warp(weight, yx, "bilinear")
    return out_image, out_label, out_weight


# --- configuration --------------------------------------------------------------------------------


@dataclass
class AugmentConfig:
    """What `TileSampler` does to each training tile; build it from a plain dict: ``AugmentConfig(**d)``.

    enabled: False turns every augmentation off (tiles are plain crops at random positions).
    elastic_grid, elastic_sigma: coarse grid nodes per side and displacement std in pixels (paper: 3, 10);
        sigma 0 disables elastic deformation.
    rotate: rotate each tile by a uniformly random angle in [0, 360) degrees (any angle, not only
        multiples of 90; the reads beyond the slice are mirrored).
    flip: flip each tile vertically and/or horizontally, each with probability 1/2.
    shift: the output tile's position is uniform over all positions that keep it within the slice
        grown by `shift` pixels on every side (the growth is mirrored data); 0 keeps output tiles
        inside the slice (random crops are already random shifts).
    brightness: additive offset range, image in [0, 1] (e.g. (-0.1, 0.1)).
    contrast: multiplicative range about each tile's mean (e.g. (0.9, 1.1)).
    gamma: range of the exponent g in x ** g, drawn log-uniformly (e.g. (0.8, 1.25)).
        Set a range to (0, 0) / (1, 1) to turn that variation off.
    image_mode: image interpolation, "bicubic" (default) or "bilinear".
    """

    enabled: bool = True
    elastic_grid: int = 3
    elastic_sigma: float = 10.0
    rotate: bool = True
    flip: bool = True
    shift: int = 0
    brightness: tuple[float, float] = (-0.1, 0.1)
    contrast: tuple[float, float] = (0.9, 1.1)
    gamma: tuple[float, float] = (0.8, 1.25)
    image_mode: str = "bicubic"

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "gamma"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) or len(value) != 2:
                raise ValueError(f"AugmentConfig.{name} must be a (low, high) pair, got {value!r}")
            low, high = float(value[0]), float(value[1])
            if low > high:
                raise ValueError(f"AugmentConfig.{name}: low {low} > high {high}")
            if name != "brightness" and low <= 0:
                raise ValueError(f"AugmentConfig.{name} must be > 0, got {value!r}")
            setattr(self, name, (low, high))  # TOML gives lists
        if self.elastic_grid < 2:
            raise ValueError(f"AugmentConfig.elastic_grid must be >= 2, got {self.elastic_grid}")
        if self.elastic_sigma < 0 or self.shift < 0:
            raise ValueError("AugmentConfig.elastic_sigma and shift must be >= 0")
        if self.image_mode not in ("bicubic", "bilinear"):
            raise ValueError(f"AugmentConfig.image_mode must be 'bicubic' or 'bilinear', got {self.image_mode!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentConfig:
        """Like ``AugmentConfig(**values)`` but an unknown key raises a ValueError listing the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(enabled=False)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (lists for ranges) that round-trips through ``AugmentConfig(**d)`` and TOML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# --- training tiles ---------------------------------------------------------------------------------


@dataclass
class TileParams:
    """Where the tiles of the last `TileSampler.sample` came from (all (N,) tensors on the device).

    slice: slice index; top, left: the input tile's top-left pixel in slice coordinates before
    rotation/flip/elastic (may be negative: mirrored context); the output tile starts
    (in_tile - out_tile) / 2 further in. angle: rotation in radians; flip_y, flip_x: bool.
    """

    slice: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    angle: torch.Tensor
    flip_y: torch.Tensor
    flip_x: torch.Tensor


class TileSampler:
    """Random (augmented) training tiles cut from whole slices, batched on one device.

    images: (S, H, W) uint8; labels: (S, H, W) in {0, 1}; weights: (S, H, W) float32 (e.g.
    `weight_maps_for_stack`). Copied to `device` once. in_tile/out_tile: the model's input and
    output side (572/388 for `original`; equal for padded models); in_tile - out_tile must be even.

    Overlap-tile strategy: every read outside a slice is mirrored, so the input tile's context around
    an output tile at the slice border is the mirrored slice and every output pixel has a label.
    All geometric augmentations (position, flip, rotation, elastic field) are composed into one
    sampling grid per tile, so each tile is interpolated once.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
        in_tile: int,
        out_tile: int,
        augment: AugmentConfig | None = None,
        device: torch.device | str = "cpu",
    ):
        images, labels, weights = np.asarray(images), np.asarray(labels), np.asarray(weights)
        if images.ndim != 3 or labels.shape != images.shape or weights.shape != images.shape:
            raise ValueError(
                f"TileSampler needs images, labels, weights of the same (S, H, W) shape, got "
                f"{images.shape}, {labels.shape}, {weights.shape}"
            )
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8 (0..255), got {images.dtype}")
        if labels.size and labels.max() > 1:
            raise ValueError("labels must be class indices in {0, 1}; map 255 to 1 (load_isbi does)")
        if out_tile < 1 or in_tile < out_tile or (in_tile - out_tile) % 2:
            raise ValueError(f"need in_tile >= out_tile >= 1 with an even difference (centred output), got {in_tile}, {out_tile}")
        self.device = torch.device(device)
        self.in_tile, self.out_tile = in_tile, out_tile
        self.augment = augment if augment is not None else AugmentConfig()
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)[:, None]
        self.labels = torch.from_numpy(labels.astype(np.uint8)).to(self.device)[:, None]
        self.weights = torch.from_numpy(weights.astype(np.float32)).to(self.device)[:, None]
        self.last_params: TileParams | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def _positions(self, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """(N,) top-left of the input tile along one axis of length `size`."""
        shift = self.augment.shift if self.augment.enabled else 0
        low, high = -shift, size - self.out_tile + shift
        if high < low:  # output tile larger than the slice: centre it
            low = high = (size - self.out_tile) // 2
        out_start = torch.randint(low, high + 1, (n,), generator=generator, device=self.device)
        return out_start - (self.in_tile - self.out_tile) // 2

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch: x (N, 1, in_tile, in_tile) float32 in [0, 1], y (N, out_tile, out_tile) int64,
        w (N, out_tile, out_tile) float32. `generator` must be on this sampler's device."""
        if generator.device.type != self.device.type:
            raise ValueError(
                f"generator is on {generator.device} but the sampler on {self.device}; "
                f"use torch.Generator(device={str(self.device)!r}).manual_seed(seed)"
            )
        n, t, cfg, dev = batch_size, self.in_tile, self.augment, self.device
        s, h, w = self.images.shape[0], self.images.shape[-2], self.images.shape[-1]
        idx = torch.randint(0, s, (n,), generator=generator, device=dev)
        top, left = self._positions(n, h, generator), self._positions(n, w, generator)
        centre = (t - 1) / 2
        rel = pixel_coordinates(n, t, t, dev) - centre  # (N, T, T, 2) y, x relative to the tile centre
        angle = torch.zeros(n, device=dev)
        flips = torch.zeros(n, 2, dtype=torch.bool, device=dev)
        if cfg.enabled:
            if cfg.elastic_sigma > 0:
                disp = random_displacement(n, t, t, cfg.elastic_grid, cfg.elastic_sigma, generator, dev)
                rel = rel + disp.permute(0, 2, 3, 1)
            if cfg.flip:
                flips = torch.rand(n, 2, generator=generator, device=dev) < 0.5
                rel = rel * torch.where(flips, -1.0, 1.0)[:, None, None, :]
            if cfg.rotate:
                angle = torch.rand(n, generator=generator, device=dev) * (2 * math.pi)
                cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
                ry, rx = rel[..., 0], rel[..., 1]
                rel = torch.stack([cos * ry - sin * rx, sin * ry + cos * rx], dim=-1)
        origin = torch.stack([top, left], dim=-1).float() + centre  # tile centre in slice coordinates
        yx = rel + origin[:, None, None, :]
        margin = (t - self.out_tile) // 2
        yx_out = yx[:, margin : margin + self.out_tile, margin : margin + self.out_tile]
        image_mode = cfg.image_mode if cfg.enabled else "bilinear"
        x = warp(self.images[idx].float() / 255.0, yx, image_mode)
        y = warp(self.labels[idx], yx_out, "nearest")[:, 0].long()
        wmap = warp(self.weights[idx], yx_out, "bilinear")[:, 0]
        if cfg.enabled:
            x = self._grey(x, generator)
        x = x.clamp_(0.0, 1.0)
        self.last_params = TileParams(idx, top, left, angle, flips[:, 0], flips[:, 1])
        return x, y, wmap

    def _grey(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Gamma, contrast about the tile mean, brightness; per tile, ranges from the config."""
        cfg, n, dev = self.augment, x.shape[0], x.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return (low + (high - low) * torch.rand(n, generator=generator, device=dev))[:, None, None, None]

        if cfg.gamma != (1.0, 1.0):
            g = torch.exp(uniform(math.log(cfg.gamma[0]), math.log(cfg.gamma[1])))
            x = x.clamp(0.0, 1.0) ** g
        if cfg.contrast != (1.0, 1.0):
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * uniform(*cfg.contrast) + mean
        if cfg.brightness != (0.0, 0.0):
            x = x + uniform(*cfg.brightness)
        return x


__all__ = [
    "AugmentConfig",
    "TileParams",
    "TileSampler",
    "elastic_deform",
    "pixel_coordinates",
    "random_displacement",
    "warp",
]
