"""Progress bars for sweeps: ``progress(iterable, cfg, desc)``.

Claim authors wrap any loop that may take more than a few seconds (a width sweep, a training run):

>>> from proofs.claim import RunConfig
>>> [w for w in progress([64, 128], RunConfig(), "widths")]
[64, 128]

The bar is a :mod:`tqdm` bar on stderr, shown only when ``cfg.progress`` is true (the CLI sets it
when stdout is a terminal) and only after ``delay`` seconds, so quick loops and redirected or
piped runs stay quiet.  With progress off (or tqdm missing) the iterable is returned unchanged.
"""
from __future__ import annotations

from typing import Iterable, Optional

__all__ = ["progress"]


def progress(iterable: Iterable, cfg=None, desc: str = "", total: Optional[int] = None,
             delay: float = 2.0) -> Iterable:
    """``iterable`` wrapped in a tqdm bar when ``cfg.progress`` is true, else ``iterable`` itself."""
    if cfg is None or not getattr(cfg, "progress", False):
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a declared dependency; a missing one only costs the bar
        return iterable
    return tqdm(iterable, desc=desc, total=total, delay=delay, leave=False, dynamic_ncols=True)
