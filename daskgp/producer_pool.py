"""``ProducerPool``: gunpowder's multiprocessing worker pool, kept only to refuse use with
what to use instead."""

from __future__ import annotations

from .unsupported import Unsupported


class ProducerPool(Unsupported):
    """gunpowder's ``ProducerPool`` (processes that call ``callables`` in a loop and queue the
    results); daskgp refuses it on construction.

    daskgp computes batches on dask schedulers instead of its own processes: ``PreCache``
    (num_workers batches in flight), ``build(pipeline, scheduler="processes")`` or a
    ``distributed.Client``; for arbitrary functions use ``dask.delayed`` or
    ``concurrent.futures.ProcessPoolExecutor``.

    Args:
        callables (list of callable), queue_size (int): gunpowder's arguments; any call raises.

    Example:
        >>> ProducerPool([lambda: 1])
        Traceback (most recent call last):
        ...
        daskgp.errors.UnsupportedError: gunpowder's ProducerPool is not provided by daskgp: ...
    """

    __daskgp_unsupported__ = (
        "daskgp computes batches on dask schedulers, not its own worker processes; use "
        "PreCache(num_workers=...), build(pipeline, scheduler='processes') or a "
        "distributed.Client (for plain functions, dask.delayed or "
        "concurrent.futures.ProcessPoolExecutor)"
    )

    def __init__(self, callables, queue_size=10) -> None:
        self.refuse()

    def start(self) -> None:
        """Refused (see the class)."""
        self.refuse()

    def get(self, timeout=0):
        """Refused (see the class)."""
        self.refuse()

    def stop(self) -> None:
        """Refused (see the class)."""
        self.refuse()
