"""Which dask scheduler materializes batches, and the one in use while a batch is planned.

Data-dependent nodes (``RandomLocation`` with ``min_masked``) compute small peeks with it.
"""

from __future__ import annotations

import contextlib
import contextvars

import dask

_LOCAL_SCHEDULERS = {
    "sync": "sync",
    "synchronous": "sync",
    "single-threaded": "sync",
    "threads": "threads",
    "threading": "threads",
    "processes": "processes",
    "multiprocessing": "processes",
}

_current = contextvars.ContextVar("daskgp_scheduler", default=None)


def resolve_scheduler(scheduler=None, client=None):
    """The scheduler to compute with: ``client``, else ``scheduler``, else dask's own rules.

    dask's rules: an active ``distributed.Client`` wins, then ``dask.config`` "scheduler",
    else threads.

    Example:
        >>> resolve_scheduler("synchronous")
        'sync'
    """
    if client is not None:
        return client
    if scheduler is None:
        try:
            from distributed import default_client

            return default_client()
        except (ImportError, ValueError):
            pass
        scheduler = dask.config.get("scheduler", None) or "threads"
    if isinstance(scheduler, str):
        if scheduler not in _LOCAL_SCHEDULERS:
            raise ValueError(
                f"unknown scheduler {scheduler!r}; use one of {sorted(set(_LOCAL_SCHEDULERS))} "
                "or pass a distributed.Client"
            )
        return _LOCAL_SCHEDULERS[scheduler]
    if hasattr(scheduler, "get"):
        return scheduler
    raise TypeError(f"scheduler must be a name or a distributed.Client, got {scheduler!r}")


def current_scheduler():
    """The scheduler of the pipeline now planning a batch ("sync" outside of one)."""
    scheduler = _current.get()
    return "sync" if scheduler is None else scheduler


@contextlib.contextmanager
def using_scheduler(scheduler):
    """Make ``scheduler`` the ``current_scheduler()`` inside the block."""
    token = _current.set(scheduler)
    try:
        yield
    finally:
        _current.reset(token)
