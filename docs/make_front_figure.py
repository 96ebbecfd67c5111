"""Draw the README's picture: an ISBI 2012 section, its membranes and its cells, with the `isbi-small` checkpoint.

    python3 docs/make_front_figure.py                       # data folder as everywhere: UNET_ZOO_DATA_DIR or the cache
    python3 docs/make_front_figure.py --data-dir ../shared/data/isbi2012 --out docs/images/front.png

Three panels side by side, each a crop of one held-out section (24-29, never trained on): the EM image,
P(membrane) from `unet_zoo.predict_tiled` (dark = membrane), and the cells `unet_zoo.segment` makes from it,
each in a random colour. Written as an indexed-colour PNG to stay small (173 kB at the defaults).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import unet_zoo
from unet_zoo.experiments.isbi2012.data import find_data_dir, read_stack
from unet_zoo.segmentation import checkpoint_params
from unet_zoo.segmentation.outputs import segments_rgb


def panels(image: np.ndarray, model_name: str = "isbi-small") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W) uint8 EM image -> three (H, W, 3) uint8 panels: the image, P(membrane) and the cells."""
    model = unet_zoo.from_pretrained(model_name)
    probs = unet_zoo.predict_tiled(model, image)  # (2, H, W) float32: channel 0 = membrane, 1 = cell
    cells = unet_zoo.segment(probs, params=checkpoint_params(model))  # (H, W) uint32 IDs
    grey = np.repeat(image[..., None], 3, axis=2)
    membrane = np.repeat(np.round(255 * (1 - probs[0])).astype(np.uint8)[..., None], 3, axis=2)
    return grey, membrane, segments_rgb(image, cells, alpha=0.6)


def figure(parts: tuple[np.ndarray, ...], titles: tuple[str, ...], gap: int = 6, band: int = 22) -> Image.Image:
    """Panels of equal size side by side on white, each with a title above it."""
    h, w = parts[0].shape[:2]
    canvas = Image.new("RGB", (len(parts) * w + (len(parts) - 1) * gap, h + band), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (part, title) in enumerate(zip(parts, titles)):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(part), (x, band))
        draw.text((x + 4, 5), title, fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--slice", type=int, default=27, help="training section to show (24-29 are held out)")
    parser.add_argument("--crop", type=int, default=320, help="side of the square crop, pixels")
    parser.add_argument("--out", default="docs/images/front.png", help="PNG to write")
    args = parser.parse_args()

    image = read_stack(find_data_dir(args.data_dir) / "train-volume.tif")[args.slice]
    parts = panels(image)
    y0 = x0 = (image.shape[0] - args.crop) // 2
    crops = tuple(p[y0 : y0 + args.crop, x0 : x0 + args.crop] for p in parts)
    titles = (
        f"ISBI 2012 section {args.slice} (held out)",
        "membranes: P(membrane), isbi-small",
        "cells: unet_zoo.segment",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    figure(crops, titles).quantize(colors=128, dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
