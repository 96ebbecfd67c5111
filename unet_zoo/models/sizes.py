"""Input/output size rules of U-Nets with valid (unpadded) or same (padded) 3x3 convolutions.

All sizes are side lengths in pixels of one spatial axis. A valid-convolution U-Net of depth ``d``
loses 4 pixels per double convolution and needs an even size before each 2x2 pooling; the paper's
network (depth 4) maps 572 -> 388. A padded U-Net keeps the size and needs a multiple of ``2**d``.
"""

from __future__ import annotations

MAX_TILE = 8192
"""Largest tile side accepted anywhere: one 8192 x 8192 feature map of 64 float32 channels is 17 GB, and a
larger image is cut into tiles anyway, so bigger tiles only run out of memory."""


def check_tile_side(tile: int, what: str = "tile") -> int:
    """`tile` if it is a plausible tile side (1 .. MAX_TILE pixels), else a ValueError saying why; returns it."""
    if tile < 1:
        raise ValueError(f"{what} must be >= 1 pixel, got {tile}")
    if tile > MAX_TILE:
        raise ValueError(
            f"{what} {tile} px is larger than any tile that fits in memory (at most {MAX_TILE} px); "
            "images larger than a tile are cut into overlapping tiles, so a smaller tile gives the same result"
        )
    return tile


def output_size(input_size: int, depth: int = 4, padding: int = 0) -> int | None:
    """Output side length for `input_size`, or None when the size cannot pass through the network."""
    if input_size < 1:
        return None
    if padding:
        return input_size if input_size % (2**depth) == 0 else None
    size = input_size
    for _ in range(depth):
        size -= 4
        if size < 2 or size % 2:
            return None
        size //= 2
    size -= 4  # bottleneck double conv
    if size < 1:
        return None
    for _ in range(depth):
        size = size * 2 - 4
        if size < 1:
            return None
    return size


def is_valid_input_size(input_size: int, depth: int = 4, padding: int = 0) -> bool:
    """True when `input_size` passes through the network without a rounding pooling step."""
    return output_size(input_size, depth, padding) is not None


def input_size_for_output(output: int, depth: int = 4, padding: int = 0) -> int:
    """Smallest valid input side whose output side is at least `output` (for tiling and training)."""
    if output < 1:
        raise ValueError(f"output size must be >= 1 pixel, got {output}")
    if padding:
        step = 2**depth
        return -(-output // step) * step
    # Walk the network backwards: the expansive path first, then the contracting path.
    size = output
    for _ in range(depth):
        size = -(-(size + 4) // 2)  # ceil: upsampled maps must cover the wanted output
    size += 4
    for _ in range(depth):
        size = size * 2 + 4
    assert is_valid_input_size(size, depth, padding)
    return size


def nearest_valid_input_sizes(size: int, depth: int = 4, padding: int = 0) -> tuple[int | None, int]:
    """The largest valid input size <= `size` (None if there is none) and the smallest one >= `size`."""
    below = next((s for s in range(size, 0, -1) if is_valid_input_size(s, depth, padding)), None)
    above = next(s for s in range(max(size, 1), size + 2 ** (depth + 4) + 1) if is_valid_input_size(s, depth, padding))
    return below, above


def nearest_valid_sizes_text(size: int, depth: int = 4, padding: int = 0) -> str:
    """The valid input sizes nearest to `size`, for error messages: "508 or 524" (just "32" when none is below)."""
    return " or ".join(str(s) for s in nearest_valid_input_sizes(size, depth, padding) if s is not None)


def size_rule(depth: int = 4, padding: int = 0) -> str:
    """A one-line, human-readable statement of the input -> output size rule."""
    if padding:
        return f"output = input; input a multiple of {2**depth}"
    step = 2**depth
    smallest = input_size_for_output(1, depth, padding)
    out = output_size(smallest, depth, padding)
    assert out is not None  # input_size_for_output returns a valid size
    loss = smallest - out
    return f"output = input - {loss}; input = {smallest % step} + {step}k, input >= {smallest}"
