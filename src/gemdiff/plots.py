"""All plotting lives here; nothing else in the package imports matplotlib.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so saving a plot never
changes the backend or global state of the caller (a notebook keeps its inline plots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path) -> Path:
    """Write to a temporary name, then rename: a reader never sees half a PNG."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def loss_curve(steps: Sequence[int], losses: Sequence[float], path: str | Path,
               val_steps: Sequence[int] = (), val_losses: Sequence[float] = ()) -> Path:
    """Training (and validation) loss against optimizer step, log-scaled, saved as PNG."""
    fig = Figure(figsize=(6, 3.5), dpi=120, layout="tight")
    ax = fig.add_subplot()
    ax.plot(steps, losses, lw=1, alpha=0.8, label="train")
    if len(val_steps):
        ax.plot(val_steps, val_losses, "o-", ms=3, label="validation (EMA, held-out split)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("noise-prediction MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, path)
