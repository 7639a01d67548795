"""``ScanCallback``: gunpowder's base class of ``Scan`` progress callbacks (``start``,
``update``, ``stop``), which daskgp's ``Scan`` calls as its tiles compute."""

from __future__ import annotations

import threading


class ScanCallback:
    """Base class for ``Scan`` progress callbacks, as gunpowder's: override any of
    ``start``, ``update`` and ``stop``.

    daskgp's ``Scan`` computes all tiles in one dask graph, so the calls come from the driver
    while the pipeline's batch computes: ``start(num_total)`` when the scan's graph is built,
    ``update(num_processed)`` each time a tile's writes (and its part of the output) are done,
    and ``stop()`` after the last tile. A plain ``callable(done, total)`` works as well.

    Example:
        >>> class Count(ScanCallback):
        ...     def start(self, num_total):
        ...         self.seen = []
        ...     def update(self, num_processed):
        ...         self.seen.append(num_processed)
        >>> # gp.Scan(reference, progress_callback=Count())
    """

    def start(self, num_total: int) -> None:
        """Called once before ``Scan`` computes, with the number of tiles."""

    def update(self, num_processed: int) -> None:
        """Called each time a tile is done, with the number of tiles done so far."""

    def stop(self) -> None:
        """Called once after the last tile is done."""


class ScanCallbackCalls:
    """``callback`` as the ``(done, total)`` function ``Scan`` reports to. Tiles finish on
    several threads, so the calls are serialised and counted here: ``update`` sees 1, 2, ...,
    total in order, and ``stop()`` comes after the last ``update``."""

    def __init__(self, callback: ScanCallback) -> None:
        self.callback = callback
        self.num_processed = 0
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self.num_processed += 1
            self.callback.update(self.num_processed)
            if self.num_processed == total:
                self.callback.stop()
