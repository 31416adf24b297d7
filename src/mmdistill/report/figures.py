"""matplotlib figures as PNG bytes (object API on an Agg canvas: no pyplot state, no display needed).

PNGs are written without a ``Software`` tag, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def new_figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def to_display(x: np.ndarray, norm: Mapping[str, Any] | None = None) -> np.ndarray:
    """(N,C,H,W) stored images -> (N,H,W,C) floats in [0, 1] for display.

    ``norm`` (a dataset's ``meta["norm"][modality]``: ``mean``/``std`` as scalars or per channel, in x/255
    units) undoes the standardisation; without it, the whole set is scaled by its 1st/99th percentiles.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"expected (N,C,H,W) images, got shape {x.shape}")
    c = x.shape[1]
    if norm and "mean" in norm and "std" in norm:
        mean = np.broadcast_to(np.asarray(norm["mean"], dtype=np.float64).reshape(-1), (c,)).reshape(1, c, 1, 1)
        std = np.broadcast_to(np.asarray(norm["std"], dtype=np.float64).reshape(-1), (c,)).reshape(1, c, 1, 1)
        y = x * std + mean
    else:
        lo, hi = np.percentile(x, [1, 99]) if x.size else (0.0, 1.0)
        y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.clip(y, 0.0, 1.0).transpose(0, 2, 3, 1)


def image_grid(images: np.ndarray, titles: Sequence[str], ncols: int = 10, cell: float = 0.9) -> bytes:
    """(N,H,W,C) images in [0,1] as one grid PNG with a small title over each cell."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = new_figure(cell * ncols, (cell + 0.3) * nrows)
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        img = images[i]
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        ax.set_title(titles[i], fontsize=6.5, pad=2, linespacing=1.0)
    return png_bytes(fig)


def spectrogram(logmel: np.ndarray, title: str, vmin: float | None = None, vmax: float | None = None) -> bytes:
    """One (n_mels, frames) spectrogram, low frequencies at the bottom."""
    fig = new_figure(2.3, 1.9)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(logmel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("frame", fontsize=7)
    ax.set_ylabel("mel band", fontsize=7)
    ax.tick_params(labelsize=6)
    return png_bytes(fig)


def heatmap(matrix: np.ndarray, title: str) -> bytes:
    """A square matrix as a diverging heatmap centred on 0, with a colour bar."""
    m = np.asarray(matrix, dtype=np.float64)
    lim = float(np.max(np.abs(m))) if m.size else 1.0
    lim = lim if lim > 0 else 1.0
    fig = new_figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("synthetic text j", fontsize=8)
    ax.set_ylabel("synthetic image i", fontsize=8)
    return png_bytes(fig)


def curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ncols: int = 3) -> bytes:
    """One small panel per named series ``{name: (x, y)}``; a log y axis when a positive series spans > 100x."""
    names = list(series)
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = new_figure(3.6 * ncols, 2.4 * nrows)
    for i, name in enumerate(names):
        x, y = (np.asarray(v, dtype=np.float64) for v in series[name])
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.plot(x, y, marker="o" if len(x) <= 20 else None, markersize=3, linewidth=1.2)
        pos = y[np.isfinite(y)]
        if pos.size and pos.min() > 0 and pos.max() / pos.min() > 100:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(hspace=0.75, wspace=0.3)
    return png_bytes(fig)


def thumb_png(img: np.ndarray) -> bytes:
    """A (H,W,C) image in [0,1] as a PNG (Pillow, no matplotlib): for table thumbnails."""
    from PIL import Image

    a = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    im = Image.fromarray(a[..., 0], mode="L") if a.shape[-1] == 1 else Image.fromarray(a[..., :3], mode="RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
