"""PNG plots of a run: loss curves from metrics.jsonl and the image–text similarity matrix."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from focusclip.core.io import atomic_path

PAIR_KEYS = ("loss_image_text", "loss_masked_image", "loss_masked_text")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(rows: list[dict], path: Path) -> Path:
    """Training loss, each pair's loss (per step) and validation loss (per epoch) → PNG."""
    plt = _plt()
    steps = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if steps:
        x = [r["step"] for r in steps]
        ax.plot(x, [r["loss"] for r in steps], label="train (sum)", lw=1.2)
        for key in PAIR_KEYS:
            if any(key in r for r in steps):
                ax.plot(x, [r.get(key, np.nan) for r in steps], label=key[5:], lw=0.8, alpha=0.8)
    if vals:
        ax.plot([r["step"] for r in vals], [r["val_loss"] for r in vals], "o-", label="val (sum)", lw=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_similarity(sim: np.ndarray, path: Path, title: str = "image–text cosine similarity") -> Path:
    """sim [N, N] (rows images, columns their texts; the diagonal are true pairs) → PNG heat map."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=110)
    im = ax.imshow(sim, cmap="viridis", vmin=-1, vmax=1)
    ax.set_xlabel("text")
    ax.set_ylabel("image")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
