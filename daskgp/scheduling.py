"""Scheduling: which dask scheduler materializes batches, and ``BatchPrefetcher``, the bounded,
ordered pool of batches computing ahead of use behind ``PreCache``.

Batch *i* is planned from its index alone, so the sequence is the same whatever the scheduler,
the number of workers or the completion order.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import heapq
import itertools
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor

import dask

from . import _pdeathsig
from .batch import Batch, compute_arrays

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


def local_get(scheduler):
    """``scheduler`` as dask's own function where it names one of dask's local schedulers
    ("sync", "threads", "processes" and their aliases), else unchanged. Every daskgp compute
    passes its scheduler through it (``Batch.compute``/``persist``, the model nodes, PreCache,
    the driver-side computes of nodes).

    ``dask.compute(scheduler="threads")`` imports ``distributed`` (to look for a client) on
    its first call in a process, about 0.5-1 s; the function runs the same scheduler without
    it.

    Example:
        >>> import dask.local
        >>> local_get("sync") is dask.local.get_sync
        True
    """
    if not isinstance(scheduler, str):
        return scheduler
    import dask.local
    import dask.multiprocessing
    import dask.threaded

    return {"sync": dask.local.get_sync, "synchronous": dask.local.get_sync,
            "single-threaded": dask.local.get_sync, "threads": dask.threaded.get,
            "threading": dask.threaded.get, "processes": dask.multiprocessing.get,
            "multiprocessing": dask.multiprocessing.get}.get(scheduler.lower(), scheduler)


@contextlib.contextmanager
def using_scheduler(scheduler):
    """Make ``scheduler`` the ``current_scheduler()`` inside the block."""
    token = _current.set(scheduler)
    try:
        yield
    finally:
        _current.reset(token)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
# Batch-sized arrays (the seed's 24 MiB raw, its source box) come from the heap and go back to
# it: freed memory is reused, not unmapped and faulted in again page by page.
BATCH_MMAP_THRESHOLD = 64 << 20
BATCH_TRIM_THRESHOLD = 256 << 20


def fix_mmap_threshold(threshold: int = BATCH_MMAP_THRESHOLD,
                       trim_threshold: int | None = BATCH_TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (and its trim threshold at
    ``trim_threshold``, if given). Returns False where this is not glibc.

    Unfixed, glibc moves its mmap threshold as batch-sized arrays come and go (up to 32 MiB),
    and resident memory may creep over long runs though no object leaks. Fixed low (64 KiB,
    what this did before), every batch-sized array is a fresh mapping faulted in page by page:
    ~23,000 page faults and ~190 CPU-ms per seed batch in ``PreCache(4, 2)``. At 64 MiB /
    256 MiB: ~1,000 faults and ~120-130 CPU-ms, resident memory flat at ~1.0-1.1 GiB over 600
    batches (vs ~0.6 GiB at 64 KiB; gunpowder's plain seed pipeline peaks at ~1.2 GiB).

    Example:
        >>> fix_mmap_threshold() in (True, False)
        True
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
        if trim_threshold is not None:
            done &= bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))
        return done
    except (OSError, AttributeError):
        return False


def usable_cores() -> int:
    """The cores this process may run on: the fewest of the machine's, its CPU affinity
    (``taskset``, a SLURM or Kubernetes cpuset) and its cgroup CPU quota, as dask counts them
    (``dask.system.cpu_count()``), read at each call.

    ``os.cpu_count()`` counts the machine's: a job given 2 cores of a 64-core node would
    compute up to 64 batches at once and run 64 pool threads on its 2 cores, the
    oversubscription ``PreCache``'s cap exists to avoid.

    Example:
        >>> usable_cores() >= 1
        True
    """
    import dask.system

    return max(1, dask.system.cpu_count())


def is_client(scheduler) -> bool:
    """True for a ``distributed.Client`` (anything with ``compute`` and ``gather``)."""
    return hasattr(scheduler, "gather") and hasattr(scheduler, "compute")


class PriorityPool:
    """A thread pool whose queued tasks run lowest priority first (FIFO among equals), shared
    by the computes of several batches: dask's threaded scheduler gets one view per batch
    (``for_priority(batch_index)``, its ``pool=``), so an earlier batch's ready tasks always
    run before a later one's and batches finish in request order.

    ``cancel()`` cancels every queued task and every later submission: the computes waiting
    on them raise ``CancelledError`` at once instead of running to the end.

    Args:
        workers (int): threads.

    Example:
        >>> pool = PriorityPool(1)
        >>> dask.compute(dask.delayed(sum)([1, 2]), pool=pool.for_priority(0))
        (3,)
        >>> pool.shutdown()
    """

    def __init__(self, workers: int) -> None:
        self._max_workers = int(workers)
        self._queue: list = []
        self._count = itertools.count()
        self._condition = threading.Condition()
        self._cancelled = False
        self._stopped = False
        self._threads = [threading.Thread(target=self._run, name=f"daskgp-compute-{i}",
                                          daemon=True) for i in range(self._max_workers)]
        for thread in self._threads:
            thread.start()

    def for_priority(self, priority) -> _PriorityView:
        """A view whose ``submit`` queues with ``priority`` (what ``dask.compute(pool=)``
        takes)."""
        return _PriorityView(self, priority)

    def submit(self, priority, fn, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` with ``priority``; a cancelled future once
        ``cancel()`` was called."""
        future: Future = Future()
        context = contextvars.copy_context()
        with self._condition:
            if self._cancelled or self._stopped:
                future.cancel()
                return future
            heapq.heappush(self._queue, (priority, next(self._count), future, context, fn,
                                         args, kwargs))
            self._condition.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopped:
                    self._condition.wait()
                if not self._queue:
                    return
                _, _, future, context, fn, args, kwargs = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = context.run(fn, *args, **kwargs)
            except BaseException as error:  # handed to the waiting compute
                future.set_exception(error)
            else:
                future.set_result(result)

    def cancel(self) -> None:
        """Cancel the queued tasks and all later submissions (running tasks finish)."""
        with self._condition:
            self._cancelled = True
            queued, self._queue = self._queue, []
        for entry in queued:
            entry[2].cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads once the queue is empty (``cancel()`` first to drop it)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class _PriorityView:
    """One batch's view of a ``PriorityPool``: ``submit`` with a fixed priority."""

    # dask submits at most ``_max_workers`` ready tasks of a compute at once; queueing more
    # than the threads keeps an earlier batch's next tasks in the queue, ahead of later ones.
    _QUEUED_PER_THREAD = 4

    def __init__(self, pool: PriorityPool, priority) -> None:
        self._pool = pool
        self._priority = priority
        self._max_workers = pool._max_workers * self._QUEUED_PER_THREAD

    def submit(self, fn, *args, **kwargs) -> Future:
        return self._pool.submit(self._priority, fn, *args, **kwargs)


class BatchPrefetcher:
    """Compute batches ``start, start + 1, ...`` ahead of use, at most ``cache_size`` at once.

    Batches are planned in request order, one at a time (nodes are not required to be
    thread-safe while planning), by as few threads as the batches computing at once need: at
    most ``max_active`` batches compute at once, where ``max_active`` is ``min(num_workers,
    max(cores, 2))`` locally (``cores``: those this process may use, ``usable_cores()``) and
    ``max(threads, 2)`` on a ``distributed.Client`` (the cluster's threads; ``num_workers`` is
    a local setting), and one more batch is planned ahead, waiting for a slot, so that
    computing never waits on the driver's planning. Later batches are not planned until then:
    a queued batch is only its index, holding no graph and no memory. The first batch computes
    alone (the next ones are planned meanwhile), so that it takes one batch's time, as with
    ``num_workers=1``, instead of sharing the cores with the second.
    Locally, batches compute on one pool of the scheduler's kind owned by this object (threads:
    one thread per core, earlier batches' tasks first, ``PriorityPool``; processes: one process
    per core, spawned), so intra-batch parallelism is kept and nothing outlives ``close()``. On
    a ``distributed.Client``, batches are submitted as futures with ``priority=-index``, so
    that the cluster runs an earlier batch's tasks first. So the first batch arrives in about
    one batch's time, and throughput, threads and memory stay those of the best setting however
    far ``num_workers`` exceeds the cores (gunpowder users' habit of 20 or 40). ``close()``
    cancels batches in flight instead of waiting for them.

    Memory: at most ``cache_size`` finished or in-flight batches are held, so the bytes held are
    at most ``cache_size x batch_bytes`` plus the scheduler's working set. On glibc, starting a
    prefetcher fixes the process's mmap and trim thresholds (``fix_mmap_threshold``: batch-sized
    arrays reuse heap memory, resident memory stays flat over long runs).

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
        self._turn = threading.Condition()
        self._next_turn = start
        self._active = 0
        threads = usable_cores()
        if self._client is not None:
            threads = sum(self._client.nthreads().values()) or 1
        # As many batches computing as threads (at least 2, so that one batch's serial tail
        # overlaps the next): more only share the cores and delay the first batch
        # (benchmarks/precache.py).
        self._max_active = max(1, min(num_workers if self._client is None else cache_size,
                                      max(2, threads)))
        self._next_start = start
        # The first batch computes alone (the next ones are planned meanwhile): it arrives in
        # one batch's time, as with num_workers=1, not sharing the cores with the second.
        self._first_done = False
        self._pending: collections.deque[tuple[int, Future]] = collections.deque()
        self._next_index = start
        self._closed = False
        fix_mmap_threshold()
        # Locally a batch's compute blocks its thread (dask's local schedulers run in the
        # caller), so max_active threads compute and one plans ahead; on a cluster a batch is
        # submitted, not waited for, so one thread plans and submits them all. Never one
        # thread per num_workers: the jobs queued behind these are only indices.
        workers = 1 if self._client is not None else min(self._max_active + 1, cache_size)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="daskgp-precache")
        self._pool = None
        if scheduler == "threads":
            self._pool = PriorityPool(threads)
        elif scheduler == "processes":
            self._pool = ProcessPoolExecutor(threads,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             **_pdeathsig.pool_options())

    def _job(self, index: int):
        with self._turn:
            # Planned one at a time, in request order (nodes need not be thread-safe
            # planning).
            self._turn.wait_for(lambda: self._closed or self._next_turn == index)
            if self._closed:
                raise CancelledError(f"batch {index}: the prefetcher was closed")
        try:
            with using_scheduler(self._scheduler):
                batch = self._plan(index)
        except BaseException:
            self._start_turn(index, take_slot=False)  # the batches after it may start
            raise
        self._start_turn(index, take_slot=True)
        release = True
        try:
            lazy_keys = [key for key, array in batch.arrays.items() if array.is_lazy]
            data = [batch.arrays[key].data for key in lazy_keys] + list(batch.side_effects)
            if self._client is not None:
                futures = self._client.compute(data, priority=-index)
                release = not futures
                self._release_when_done(futures)
                return batch, lazy_keys, futures
            kwargs = {}
            if isinstance(self._pool, PriorityPool):
                kwargs = {"pool": self._pool.for_priority(index)}
            elif self._pool is not None:
                kwargs = {"pool": self._pool}
            values = compute_arrays(data[:len(lazy_keys)], *data[len(lazy_keys):],
                                    scheduler=self._scheduler, **kwargs)
            return batch, lazy_keys, values
        finally:
            if release:
                self._release()

    def _start_turn(self, index: int, take_slot: bool) -> None:
        """Pass the planning turn on; then wait for batch ``index``'s turn to start computing
        (in request order, at most ``_max_active`` at once) and take a slot if asked."""
        with self._turn:
            self._next_turn += 1
            self._turn.notify_all()
            self._turn.wait_for(lambda: self._closed or (
                self._next_start == index and (not take_slot
                                               or self._active < self._slots())))
            if self._closed:
                raise CancelledError(f"batch {index}: the prefetcher was closed")
            self._active += take_slot
            self._first_done |= not take_slot  # a batch that failed planning computes nothing
            self._next_start += 1
            self._turn.notify_all()

    def _slots(self) -> int:
        """Batches that may compute now: one until the first has computed, then
        ``_max_active``."""
        return self._max_active if self._first_done else 1

    def _release(self) -> None:
        with self._turn:
            self._active -= 1
            self._first_done = True
            self._turn.notify_all()

    def _release_when_done(self, futures) -> None:
        """Release the batch's turn once all its cluster futures have finished."""
        remaining = [len(futures)]
        lock = threading.Lock()

        def done(_future) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self._release()

        for future in futures:
            future.add_done_callback(done)

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
        """Cancel the batches in flight (their queued tasks; running tasks finish), release
        every thread and process."""
        if self._closed:
            return
        with self._turn:
            self._closed = True
            self._turn.notify_all()
        for _, future in self._pending:
            future.cancel()
        if isinstance(self._pool, PriorityPool):
            self._pool.cancel()
        elif self._pool is not None:
            # Queued tasks are dropped, running ones (one per process) finish.
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        for _, future in self._pending:
            if self._client is not None and future.done() and not future.cancelled():
                if future.exception() is None:
                    self._client.cancel(future.result()[2])
        self._pending.clear()
        if isinstance(self._pool, PriorityPool):
            self._pool.shutdown(wait=True)
