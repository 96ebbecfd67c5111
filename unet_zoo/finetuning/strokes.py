"""Strokes drawn automatically from dense labels: what a user would paint, for studies and tests.

    strokes = draw_strokes(cells, 20, rng=0)                    # 20 membrane + 20 cell strokes per slice
    strokes = draw_strokes(cells, 20, rng=0, priority=uncert)   # placed where `priority` is highest
    more = draw_strokes(cells, 10, rng=1, priority=new_map, painted=strokes)  # a second round beside the first
    even = draw_strokes(cells, 20, rng=0, priority=uncert, top=None, stratify=True)  # one per part of the slice
    fixes = draw_strokes(cells, 20, rng=0, priority=(p_cell, 1 - p_cell), top=None)  # where the prediction is wrong

Membrane strokes follow the membranes' centre line (their skeleton), `width` px wide and kept on membrane;
cell strokes are short straight lines through a cell's interior, at least `margin` px from any membrane.
The result is in the scribble form `unet_zoo.finetune` takes (0 = not labelled, 1 = membrane, 2 = cell).
"""

from __future__ import annotations

import numpy as np

MEMBRANE, CELL = 1, 2


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy * yy + xx * xx <= radius * radius


def _pick(
    candidates: np.ndarray, priority: np.ndarray | None, rng: np.random.Generator, top: float | None
) -> tuple[int, int] | None:
    """A random candidate pixel. With `priority`: among the `top` share of candidates with the highest priority,
    or, with ``top=None``, drawn with a probability proportional to the priority."""
    ys, xs = np.nonzero(candidates)
    if len(ys) == 0:
        return None
    if priority is not None:
        values = priority[ys, xs].astype(np.float64)
        if top is None:
            weights = np.clip(values, 0, None)
            if weights.sum() > 0:
                i = int(rng.choice(len(ys), p=weights / weights.sum()))
                return int(ys[i]), int(xs[i])
        else:
            keep = values >= np.quantile(values, 1 - top)
            ys, xs = ys[keep], xs[keep]
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def _regions(shape: tuple[int, int], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` of the parts of a grid of about `count` equal rectangles over `shape`, in random order, as masks."""
    h, w = shape
    rows = max(1, int(np.floor(np.sqrt(count * h / w))))
    cols = int(np.ceil(count / rows))
    ys, xs = np.linspace(0, h, rows + 1).astype(int), np.linspace(0, w, cols + 1).astype(int)
    masks = []
    for i in rng.permutation(rows * cols)[:count]:
        mask = np.zeros(shape, bool)
        mask[ys[i // cols] : ys[i // cols + 1], xs[i % cols] : xs[i % cols + 1]] = True
        masks.append(mask)
    return masks


def _pick_in(
    candidates: np.ndarray, region: np.ndarray | None, priority: np.ndarray | None, rng: np.random.Generator, top: float | None
) -> tuple[int, int] | None:
    """`_pick` within `region` (None: anywhere), or anywhere when the region has no candidate left."""
    inside = None if region is None else candidates & region
    return _pick(inside if inside is not None and inside.any() else candidates, priority, rng, top)


def _slice_strokes(
    cells: np.ndarray,
    count: int,
    rng: np.random.Generator,
    length: int,
    width: int,
    margin: int,
    priority: tuple[np.ndarray | None, np.ndarray | None],
    top: float | None,
    spacing: int,
    painted: np.ndarray | None,
    stratify: bool,
) -> np.ndarray:
    from scipy import ndimage
    from skimage.draw import line
    from skimage.morphology import skeletonize

    h, w = cells.shape
    out = np.zeros((h, w), np.uint8)
    membrane = cells == 0
    skeleton = skeletonize(membrane)
    interior = ndimage.distance_transform_edt(cells != 0) > margin
    brush = _disk(max(0, (width - 1) // 2))
    reach = _disk(length // 2)
    free = np.ones((h, w), bool)  # strokes do not overlap
    if painted is not None and painted.any():  # strokes of an earlier round stay, new ones keep their distance
        out[:] = painted
        free &= ~ndimage.binary_dilation(painted > 0, iterations=spacing)
    regions = _regions((h, w), count, rng) if stratify else [None] * count
    for region in regions:
        seed = _pick_in(skeleton & free, region, priority[0], rng, top)
        if seed is None:
            break
        y, x = seed
        window = np.zeros((h, w), bool)  # the skeleton within length/2 of the seed, connected to it
        r = length // 2
        y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        window[y0:y1, x0:x1] = reach[y0 - y + r : y1 - y + r, x0 - x + r : x1 - x + r]
        parts, _ = ndimage.label(skeleton & window, structure=np.ones((3, 3)))
        stroke = ndimage.binary_dilation(parts == parts[y, x], brush) & membrane & free
        out[stroke] = MEMBRANE
        free &= ~ndimage.binary_dilation(stroke, iterations=spacing)
    regions = _regions((h, w), count, rng) if stratify else [None] * count
    for region in regions:
        seed = _pick_in(interior & free, region, priority[1], rng, top)
        if seed is None:
            break
        y, x = seed
        angle = rng.uniform(0, np.pi)
        dy, dx = np.sin(angle) * length / 2, np.cos(angle) * length / 2
        ys, xs = line(
            int(np.clip(round(y - dy), 0, h - 1)),
            int(np.clip(round(x - dx), 0, w - 1)),
            int(np.clip(round(y + dy), 0, h - 1)),
            int(np.clip(round(x + dx), 0, w - 1)),
        )
        path = np.zeros((h, w), bool)
        path[ys, xs] = True
        path[y, x] = True  # the seed, which rounding may have missed
        parts, _ = ndimage.label(path & interior, structure=np.ones((3, 3)))
        stroke = ndimage.binary_dilation(parts == parts[y, x], brush) & (cells != 0) & free
        out[stroke] = CELL
        free &= ~ndimage.binary_dilation(stroke, iterations=spacing)
    return out


def draw_strokes(
    cells: np.ndarray,
    count: int,
    *,
    rng: int | np.random.Generator = 0,
    length: int = 16,
    width: int = 3,
    margin: int = 2,
    priority: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None,
    top: float | None = 0.1,
    spacing: int = 3,
    painted: np.ndarray | None = None,
    stratify: bool = False,
) -> np.ndarray:
    """Simulated strokes on dense labels.

    cells: (H, W) or (S, H, W) labels, 1 (or any non-zero value) = cell, 0 = membrane.
    count: membrane strokes and cell strokes per slice (`count` of each; fewer when the slice has no room).
    length: stroke length in px (membranes: the skeleton within length/2 of the seed); width: brush width in px;
    margin: cell strokes keep more than this many px from a membrane.
    priority: (H, W) / (S, H, W) map (e.g. `unet_zoo.inference.tiling.predict_uncertainty`'s); seeds are drawn
    among the `top` share of each class's candidate pixels with the highest priority, or with ``top=None`` with a
    probability proportional to the priority (None: anywhere, uniformly); a pair (membrane map, cell map) gives
    each class its own (None: uniformly), e.g. (P(cell), P(membrane)): where the prediction contradicts the class.
    spacing: px kept free around every stroke, so that strokes do not touch (larger: strokes spread out more).
    painted: scribbles of an earlier round, the same shape (0 = not labelled); kept in the result, and the `count`
    new strokes per class keep `spacing` px from them (a second round of painting, e.g. on a new model's map).
    stratify: cut each slice into a grid of about `count` equal parts and draw each class's strokes one per part
    (`priority` then chooses within each part): strokes cover the whole slice, as a person painting part by part.
    Returns uint8 scribbles of the same shape: 0 = not labelled, 1 = membrane, 2 = cell.
    """
    cells = np.asarray(cells)
    squeeze = cells.ndim == 2
    stack = cells[None] if squeeze else cells
    maps = priority if isinstance(priority, tuple) else (priority, priority)
    if len(maps) != 2:
        raise ValueError(f"priority is one map or a pair (membrane map, cell map); got {len(maps)} maps")
    prio = [None if m is None else np.asarray(m, np.float32).reshape(stack.shape) for m in maps]
    if painted is not None and np.shape(painted) != cells.shape:
        raise ValueError(f"painted strokes have shape {np.shape(painted)}, the labels {cells.shape}")
    earlier = None if painted is None else np.asarray(painted, np.uint8).reshape(stack.shape)
    if count < 0 or length < 1 or width < 1 or spacing < 1 or (top is not None and not 0 < top <= 1):
        raise ValueError(
            f"need count >= 0, length >= 1, width >= 1, spacing >= 1 and 0 < top <= 1 (or None); "
            f"got {count}, {length}, {width}, {spacing}, {top}"
        )
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = np.stack(
        [
            _slice_strokes(
                s,
                count,
                generator,
                length,
                width,
                margin,
                (None if prio[0] is None else prio[0][i], None if prio[1] is None else prio[1][i]),
                top,
                spacing,
                None if earlier is None else earlier[i],
                stratify,
            )
            for i, s in enumerate(stack)
        ]
    )
    return out[0] if squeeze else out


__all__ = ["CELL", "MEMBRANE", "draw_strokes"]
