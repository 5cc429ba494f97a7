"""Progress bars for long loops (tqdm), shown where they redraw in place: a terminal or a
notebook. Written to a log file or a pipe, a bar's every redraw would be a line of its own."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True where a progress bar redraws in place: stderr is a terminal, or the code runs in a
    Jupyter kernel (whose bars are widgets)."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # replaced or closed stderr
        pass
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def progress_bar(iterable: Iterable[T], enabled: bool, desc: str) -> Iterable[T]:
    """``iterable`` with a tqdm bar when ``enabled`` and :func:`interactive`, else as it is."""
    if not (enabled and interactive()):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, mininterval=0.5)
