"""Scheduling: which dask scheduler materializes batches, and ``BatchPrefetcher``, the bounded,
ordered pool of batches computing ahead of use behind ``PreCache``.

Batch *i* is planned from its index alone, so the sequence is the same whatever the scheduler,
the number of workers or the completion order.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

import dask

from . import _pdeathsig
from .batch import Batch

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


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def fix_mmap_threshold(threshold: int = 65536) -> bool:
    """Make glibc serve allocations above ``threshold`` bytes by mmap, returned to the OS on
    free (what ``MALLOC_TRIM_THRESHOLD_=65536``, which ``distributed`` sets for its workers,
    also does). Returns False where this is not glibc.

    Without it, glibc raises its mmap threshold as batch-sized arrays come and go, and many
    threads allocating them make the heap keep freed memory: resident memory creeps up over
    thousands of batches though no object leaks (``benchmarks/precache.py``'s soak).
    """
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def is_client(scheduler) -> bool:
    """True for a ``distributed.Client`` (anything with ``compute`` and ``gather``)."""
    return hasattr(scheduler, "gather") and hasattr(scheduler, "compute")


class BatchPrefetcher:
    """Compute batches ``start, start + 1, ...`` ahead of use, at most ``cache_size`` at once.

    Locally, ``num_workers`` threads each plan (one at a time, under a lock: nodes are not
    required to be thread-safe while planning) and compute one batch; their computes share one
    pool of the scheduler's kind owned by this object (threads: one thread per core; processes:
    one process per core, spawned), so intra-batch parallelism is kept and nothing outlives
    ``close()``. On a ``distributed.Client``, up to ``cache_size`` batches are submitted as
    futures and the cluster decides the parallelism.

    Memory: at most ``cache_size`` finished or in-flight batches are held, so the bytes held are
    at most ``cache_size x batch_bytes`` plus the scheduler's working set. On glibc, starting a
    prefetcher fixes the process's mmap threshold (``fix_mmap_threshold``) so that resident
    memory stays flat over long runs.

    Args:
        plan (callable): ``plan(index) -> Batch``, the lazy batch for sequence index ``index``.
        scheduler: ``"sync"``, ``"threads"``, ``"processes"`` or a ``distributed.Client``.
        cache_size (int): batches held or in flight at most.
        num_workers (int): batches computed at once (local schedulers).
        start (int): index of the first batch.

    Example:
        >>> prefetcher = BatchPrefetcher(lambda i: Batch(), "sync", cache_size=2, num_workers=1)
        >>> isinstance(prefetcher.get(0), Batch)
        True
        >>> prefetcher.close()
    """

    def __init__(self, plan: Callable[[int], Batch], scheduler, cache_size: int,
                 num_workers: int, start: int = 0) -> None:
        if cache_size < 1 or num_workers < 1:
            raise ValueError(
                f"cache_size and num_workers must be >= 1, got {cache_size} and {num_workers}"
            )
        self._plan = plan
        self._scheduler = scheduler
        self._client = scheduler if is_client(scheduler) else None
        self._cache_size = cache_size
        self._plan_lock = threading.Lock()
        self._pending: collections.deque[tuple[int, Future]] = collections.deque()
        self._next_index = start
        self._closed = False
        fix_mmap_threshold()
        workers = 1 if self._client is not None else min(num_workers, cache_size)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="daskgp-precache")
        self._pool = None
        if scheduler == "threads":
            self._pool = ThreadPoolExecutor(os.cpu_count() or 1,
                                            thread_name_prefix="daskgp-compute")
        elif scheduler == "processes":
            self._pool = ProcessPoolExecutor(os.cpu_count() or 1,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             **_pdeathsig.pool_options())

    def _job(self, index: int):
        with self._plan_lock, using_scheduler(self._scheduler):
            batch = self._plan(index)
        lazy_keys = [key for key, array in batch.arrays.items() if array.is_lazy]
        data = [batch.arrays[key].data for key in lazy_keys] + list(batch.side_effects)
        if self._client is not None:
            return batch, lazy_keys, self._client.compute(data)
        kwargs = {} if self._pool is None else {"pool": self._pool}
        values = dask.compute(*data, scheduler=self._scheduler, **kwargs)
        return batch, lazy_keys, values

    def _fill(self) -> None:
        while len(self._pending) < self._cache_size:
            index = self._next_index
            self._pending.append((index, self._executor.submit(self._job, index)))
            self._next_index += 1

    def get(self, index: int) -> Batch:
        """The computed batch ``index``; must be the next one in order."""
        if self._closed:
            raise RuntimeError("this prefetcher is closed")
        self._fill()
        head, future = self._pending[0]
        if head != index:
            raise ValueError(f"batch {index} asked for, but batch {head} is next")
        self._pending.popleft()
        batch, keys, values = future.result()
        if self._client is not None:
            values = self._client.gather(values)
        self._fill()
        return batch.with_computed(keys, values[: len(keys)])

    def close(self) -> None:
        """Cancel what has not started, wait for what has, release every thread and process."""
        if self._closed:
            return
        self._closed = True
        for _, future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for _, future in self._pending:
            if self._client is not None and future.done() and not future.cancelled():
                if future.exception() is None:
                    self._client.cancel(future.result()[2])
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
