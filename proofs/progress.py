"""Progress display: ``progress(iterable, cfg, desc)`` for loops inside claims, and the one status
line of a command-line run, :func:`status_line`.

Claim authors wrap any loop that may take more than a few seconds (a width sweep, a training run):

>>> from proofs.claim import RunConfig
>>> [w for w in progress([64, 128], RunConfig(), "widths")]
[64, 128]

Nothing is shown unless ``cfg.progress`` is true (the CLI sets it when standard error is a
terminal); with progress off (or tqdm missing) the iterable is returned unchanged.

With progress on, there are two cases:

* inside a :func:`status_line` (the CLI opens one over the claims, and one for the figure phase of
  ``report``), each item of the loop updates that line: ``claims 3/42 [00:41] ngd.exact.one_step:
  isotropy sweep 12/30``.  Nested loops show as ``outer 2/5 > inner 7/10``; the line is redrawn at
  most every 0.1 s by the loops and once a second by a timer, so the elapsed time moves during a
  slow sweep point too.  (Nested tqdm bars with a start delay were used before: a bar appeared
  only after its first item finished *and* 2 s had passed, so a sweep whose points each take
  seconds showed nothing, and on terminals that report a size of 0 -- ``script``, some CI and IDE
  consoles -- tqdm drew nothing at all.)
* outside one (library use), a tqdm bar on standard error, shown after ``delay`` seconds.

>>> import io
>>> stream = io.StringIO()
>>> with status_line(RunConfig(progress=True), "claims", total=1, file=stream, ticker=False) as line:
...     line.item("demo.claim")
...     _ = [w for w in progress([64, 128], RunConfig(progress=True), "widths")]
...     line.advance()
>>> "demo.claim: widths 2/2" in stream.getvalue()
True
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, List, Optional

__all__ = ["progress", "status_line", "StatusLine", "terminal_columns"]

#: a terminal that reports no size gets this many columns
FALLBACK_COLUMNS = 100


def terminal_columns(file=None) -> int:
    """The width of the terminal behind ``file`` (default standard error); ``FALLBACK_COLUMNS``
    when it reports none (0 columns, not a terminal, no file descriptor)."""
    file = file if file is not None else sys.stderr
    try:
        columns = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
    return columns if columns > 0 else FALLBACK_COLUMNS


def _enabled(cfg) -> bool:
    return cfg is not None and bool(getattr(cfg, "progress", False))


class StatusLine:
    """One redrawn line: a count over the top-level items (claims, figures), the current item, and
    the loops running inside it (see the module docstring)."""

    def __init__(self, bar, min_interval: float = 0.1):
        self.bar = bar
        self.current = ""
        self.loops: List[list] = []  # [desc, done, total] per nesting level
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = threading.RLock()

    # -- the top level
    def item(self, label: str) -> None:
        """The item now running (a claim id)."""
        with self._lock:
            self.current = str(label)
            self.loops = []
            self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.loops = []
            self.bar.update(n)
            self._draw(force=True)

    def set_count(self, n: int) -> None:
        """Set the count (e.g. figures found on disk so far)."""
        with self._lock:
            if n != self.bar.n:
                self.bar.n = n
                self._draw(force=True)

    # -- loops inside the current item
    def wrap(self, iterable: Iterable, desc: str, total: Optional[int]) -> Iterator:
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        level = [str(desc), 0, total]
        with self._lock:
            self.loops.append(level)
            self._draw(force=True)
        try:
            for x in iterable:
                yield x
                with self._lock:
                    level[1] += 1
                    self._draw(force=level[1] == total)  # the last point is always shown
        finally:
            with self._lock:
                if level in self.loops:
                    self.loops.remove(level)
                self._draw()

    def text(self) -> str:
        loops = " > ".join(f"{d} {n}/{t}" if t is not None else f"{d} {n}" for d, n, t in self.loops)
        return ": ".join(part for part in (self.current, loops) if part)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self.bar.set_postfix_str(self.text(), refresh=False)
        self.bar.refresh()

    def tick(self) -> None:
        """Redraw (the elapsed time moves)."""
        with self._lock:
            self._draw(force=True)


_LINES: List[StatusLine] = []


@contextmanager
def status_line(cfg, desc: str, total: Optional[int] = None, file=None, unit: str = "it",
                ticker: bool = True) -> Iterator[Optional[StatusLine]]:
    """A :class:`StatusLine` on ``file`` (default standard error) while the block runs; loops
    wrapped with :func:`progress` inside it report on it.  Yields ``None`` (and shows nothing) when
    ``cfg.progress`` is false or tqdm is missing.  ``ticker``: redraw once a second from a timer
    thread."""
    if not _enabled(cfg):
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a declared dependency; a missing one only costs the line
        yield None
        return
    file = file if file is not None else sys.stderr
    bar = tqdm(total=total, desc=desc, file=file, leave=False, ncols=terminal_columns(file), nrows=24,
               unit=unit, mininterval=0.0, bar_format="{l_bar}{bar:12}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}"
               if total is not None else "{desc}: {n_fmt} [{elapsed}]{postfix}")  # postfix: ", <text>"
    line = StatusLine(bar)
    _LINES.append(line)
    stop = threading.Event()
    timer = None
    if ticker:
        def tick():
            while not stop.wait(1.0):
                line.tick()
        timer = threading.Thread(target=tick, name="ngd-verify-progress", daemon=True)
        timer.start()
    try:
        yield line
    finally:
        stop.set()
        if timer is not None:
            timer.join(timeout=2.0)
        _LINES.remove(line)
        bar.close()


def progress(iterable: Iterable, cfg=None, desc: str = "", total: Optional[int] = None,
             delay: float = 2.0) -> Iterable:
    """``iterable``, reporting each item on the active :func:`status_line` (or a tqdm bar when
    there is none) when ``cfg.progress`` is true; else ``iterable`` itself."""
    if not _enabled(cfg):
        return iterable
    if _LINES:
        return _LINES[-1].wrap(iterable, desc, total)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, delay=delay, leave=False, ncols=terminal_columns(), nrows=24)
