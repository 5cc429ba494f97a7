"""All plotting lives here; nothing else in the package imports matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_curve(steps: Sequence[int], losses: Sequence[float], path: str | Path,
               val_steps: Sequence[int] = (), val_losses: Sequence[float] = ()) -> Path:
    """Training (and validation) loss against optimizer step, log-scaled, saved as PNG."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, losses, lw=1, alpha=0.8, label="train")
    if len(val_steps):
        ax.plot(val_steps, val_losses, "o-", ms=3, label="validation (EMA, held-out split)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("noise-prediction MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
