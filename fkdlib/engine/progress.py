"""Progress bars: tqdm.auto (a widget in notebooks, text in terminals), quiet on CI."""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_wanted(progress: bool | None = None) -> bool:
    """``progress`` if given; else bars unless on CI or ``FKD_PROGRESS=0`` (set when notebooks are executed to be committed)."""
    if progress is not None:
        return progress
    return not os.environ.get("CI") and os.environ.get("FKD_PROGRESS", "1") != "0"


def bar(iterable=None, progress: bool | None = None, **kw) -> tqdm:
    """A tqdm bar over ``iterable``, disabled when ``progress_wanted`` says so."""
    return tqdm(iterable, disable=not progress_wanted(progress), dynamic_ncols=True, **kw)
