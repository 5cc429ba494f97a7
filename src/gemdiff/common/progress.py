"""Progress bars for long loops (tqdm, shown in terminals and notebooks alike)."""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], enabled: bool, desc: str) -> Iterable[T]:
    """``iterable`` with a tqdm bar when ``enabled``, else as it is."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, mininterval=0.5)
