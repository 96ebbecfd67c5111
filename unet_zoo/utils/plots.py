"""Figures drawn with matplotlib (Agg backend, no display needed): training curves and prediction panels.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`), never pyplot, so no global
state is touched and the functions are safe in scripts, notebooks, threads and dask workers.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from unet_zoo.utils.files import atomic_write_bytes

# (title, y label, metric keys) per panel of the training curves
DEFAULT_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Loss", "weighted cross-entropy (nats)", ("loss", "val_loss")),
    ("Validation pixel error", "pixel error", ("val_pixel_error",)),
)
LABELS = {"loss": "training (running mean)", "val_loss": "validation tiles", "val_pixel_error": "validation tiles"}


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=110, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def running_mean(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each position (shorter at the start); same length as `values`."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    start = np.maximum(idx - window, 0)
    return (c[idx] - c[start]) / (idx - start)


def plot_curves(
    records: Iterable[dict],
    path: str | Path,
    panels: Sequence[tuple[str, str, Sequence[str]]] = DEFAULT_PANELS,
) -> Path:
    """Training curves from JSONL-style `records` (dicts with ``step`` and metric keys) into a PNG.

    `panels` lists (title, y label, metric keys); records lacking a key are skipped for that key. The
    training loss is drawn raw (faint) and as a running mean over about 1/20 of the run. Returns the path.
    """
    records = list(records)
    fig = _figure(7.0, 2.6 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, ylabel, keys) in zip(axes, panels):
        for key in keys:
            pts = [(r["step"], float(r[key])) for r in records if r.get(key) is not None]
            if not pts:
                continue
            steps, values = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            if key == "loss" and len(values) > 10:
                ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
                values = running_mean(values, max(2, len(values) // 20))
            ax.plot(steps, values, marker="o" if len(values) <= 30 else None, markersize=3, label=LABELS.get(key, key))
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=True, fontsize=8)
    axes[-1].set_xlabel("optimiser step")
    return _save(fig, path)


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
) -> Path:
    """One row per slice: image | predicted membrane probability | overlay (`overlay_rgb`); PNG.

    images: (S, H, W) uint8; membrane_probs: (S, H, W) float in [0, 1]; labels: (S, H, W) {0, 1} or None.
    Returns the written path.
    """
    images, membrane_probs = np.asarray(images), np.asarray(membrane_probs)
    if images.ndim != 3 or images.shape != membrane_probs.shape:
        raise ValueError(f"images and membrane_probs must both be (S, H, W); got {images.shape} and {membrane_probs.shape}")
    s = images.shape[0]
    fig = _figure(9.0, 3.0 * s + 0.3)
    axes = fig.subplots(s, 3, squeeze=False)
    overlay_title = "prediction (magenta) vs truth (green)" if labels is not None else "predicted membrane (magenta)"
    for i in range(s):
        row = axes[i]
        row[0].imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        shown = row[1].imshow(np.clip(membrane_probs[i], 0, 1), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        row[2].imshow(overlay_rgb(images[i], membrane_probs[i], None if labels is None else labels[i]), interpolation="nearest")
        fig.colorbar(shown, ax=row[1], fraction=0.046, pad=0.02, label="P(membrane)")
        row[0].set_ylabel(titles[i] if titles else f"slice {i}")
        for ax, title in zip(row, ("image", "P(membrane)", overlay_title)):
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=10)
    return _save(fig, path)


__all__ = ["overlay_rgb", "plot_curves", "plot_overlays", "running_mean"]
