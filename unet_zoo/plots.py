"""PNG figures drawn with Pillow (no matplotlib): training curves and prediction overlays."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_write_bytes

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _save_png(image: Image.Image, path: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _nice(value: float) -> str:
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.1e}"


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, series: dict[str, tuple[list[float], list[float]]]) -> None:
    left, top, right, bottom = box
    font = _font(12)
    draw.text((left + 4, top + 2), title, fill="black", font=font)
    plot = (left + 56, top + 22, right - 10, bottom - 26)
    draw.rectangle(plot, outline="black")
    xs = [x for s in series.values() for x in s[0]]
    ys = [y for s in series.values() for y in s[1] if math.isfinite(y)]
    if not xs or not ys:
        draw.text((plot[0] + 8, plot[1] + 8), "no data", fill="grey", font=font)
        return
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    pad = (y1 - y0) * 0.05 or abs(y0) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (
            plot[0] + (x - x0) / (x1 - x0) * (plot[2] - plot[0]),
            plot[3] - (y - y0) / (y1 - y0) * (plot[3] - plot[1]),
        )

    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        _, py = to_px(x0, y)
        draw.line((plot[0] - 3, py, plot[0], py), fill="black")
        draw.text((left + 2, py - 6), _nice(y), fill="black", font=font)
        x = x0 + frac * (x1 - x0)
        px, _ = to_px(x, y0)
        draw.line((px, plot[3], px, plot[3] + 3), fill="black")
        draw.text((px - 10, plot[3] + 5), _nice(x), fill="black", font=font)
    draw.text((plot[2] - 30, bottom - 14), "step", fill="black", font=font)
    for i, (name, (sx, sy)) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [to_px(x, y) for x, y in zip(sx, sy) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points if len(points) <= 30 else []:
            draw.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=colour)
        draw.text((plot[2] - 150, plot[1] + 4 + 14 * i), name, fill=colour, font=font)


def plot_curves(
    records: Iterable[dict],
    path: str | Path,
    panels: Sequence[tuple[str, Sequence[str]]] = (("loss (weighted CE, nats)", ("loss", "val_loss")), ("validation pixel error", ("val_pixel_error",))),
    width: int = 640,
    panel_height: int = 260,
) -> Path:
    """Draw metric curves from JSONL-style `records` (dicts with ``step`` and metric keys) into a PNG.

    `panels` lists (title, metric keys); records lacking a key are skipped for that key.
    Returns the written path.
    """
    records = list(records)
    image = Image.new("RGB", (width, panel_height * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    for i, (title, keys) in enumerate(panels):
        series = {}
        for key in keys:
            pts = [(r["step"], float(r[key])) for r in records if key in r and r[key] is not None]
            if pts:
                series[key] = ([p[0] for p in pts], [p[1] for p in pts])
        _panel(draw, (0, i * panel_height, width, (i + 1) * panel_height), title, series)
    return _save_png(image, path)


def overlay_rgb(image: np.ndarray, membrane_prob: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB overlay: the EM image in grey, predicted membrane (prob > 0.5) in magenta,
    true membrane (label 0) in green, so agreement shows as white-ish and errors as pure colour.

    image: (H, W) uint8; membrane_prob: (H, W) float in [0, 1]; label: (H, W) {0 = membrane, 1 = cell}.
    """
    grey = image.astype(np.float32)[..., None].repeat(3, axis=2) * 0.6
    predicted = membrane_prob > 0.5
    grey[predicted] += np.array([100, 0, 100], dtype=np.float32)
    if label is not None:
        grey[label == 0] += np.array([0, 100, 0], dtype=np.float32)
    return np.clip(grey, 0, 255).astype(np.uint8)


def plot_overlays(
    images: np.ndarray,
    membrane_probs: np.ndarray,
    labels: np.ndarray | None,
    path: str | Path,
    titles: Sequence[str] | None = None,
    max_side: int = 320,
) -> Path:
    """One row per slice: image | predicted membrane probability | overlay (`overlay_rgb`); PNG.

    images: (S, H, W) uint8; membrane_probs: (S, H, W) float in [0, 1]; labels: (S, H, W) {0, 1} or None.
    Each panel is scaled to at most `max_side` pixels. Returns the written path.
    """
    images, membrane_probs = np.asarray(images), np.asarray(membrane_probs)
    if images.ndim != 3 or images.shape != membrane_probs.shape:
        raise ValueError(f"images and membrane_probs must both be (S, H, W); got {images.shape} and {membrane_probs.shape}")
    s, h, w = images.shape
    scale = min(4.0, max_side / max(h, w))  # small slices are enlarged (up to 4x), large ones shrunk
    ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
    header, gap = 18, 4
    sheet = Image.new("RGB", (3 * pw + 4 * gap, header + s * (ph + header) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for col, name in enumerate(("image", "P(membrane)", "predicted magenta, true green")):
        draw.text((gap + col * (pw + gap), 2), name, fill="black", font=font)
    for i in range(s):
        y = header + i * (ph + header)
        if titles:
            draw.text((gap, y), titles[i], fill="black", font=font)
        prob = (np.clip(membrane_probs[i], 0, 1) * 255).astype(np.uint8)
        panels = [
            Image.fromarray(images[i]).convert("RGB"),
            Image.fromarray(prob).convert("RGB"),
            Image.fromarray(overlay_rgb(images[i], membrane_probs[i], None if labels is None else labels[i])),
        ]
        for col, panel in enumerate(panels):
            sheet.paste(panel.resize((pw, ph), Image.NEAREST if scale > 1 else Image.BILINEAR), (gap + col * (pw + gap), y + header - 2))
    return _save_png(sheet, path)


__all__ = ["overlay_rgb", "plot_curves", "plot_overlays"]
