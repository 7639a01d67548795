"""``PreCache``: computes upcoming batches in parallel, ahead of the node downstream."""

from __future__ import annotations

from ..batch import Batch
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import BatchPrefetcher, current_scheduler


class PreCache(BatchFilter):
    """Keep up to ``cache_size`` batches computing ahead, ``num_workers`` at a time.

    A materialization boundary: batches leave this node computed (numpy). Batch *i* of a
    pipeline's request sequence is planned from its seed ``f(build seed, i)`` alone, so the
    batches come out in request order and bit-identical whatever the scheduler, the number of
    workers or the order in which they finish (gunpowder's PreCache returns batches in completion
    order, and identical batches when the request is seeded). Nothing is forked: local schedulers
    use threads (and the scheduler's own pool), a ``distributed.Client`` gets futures.

    A request with a seed of its own (``BatchRequest(random_seed=...)``) cannot be predicted and
    is computed on demand. A request for other ROIs than the cached one restarts the cache.

    Batches are planned in request order, one at a time and only when a slot frees: at most
    ``min(num_workers, max(cores, 2))`` batches compute at once (cores: those the process may
    use, its CPU affinity and cgroup quota counted as dask does; on a ``distributed.Client``,
    ``max(threads, 2)`` of the cluster's, as futures with ``priority=-index``), one more is
    planned ahead, and the rest wait as bare indices; the first batch computes alone. An
    earlier batch's tasks run before a later one's, so gunpowder's habitual
    ``num_workers=20`` or ``40`` costs neither first-batch latency, throughput, threads nor
    memory (``benchmarks/precache.py``).
    Leaving ``build()`` cancels the batches in flight instead of waiting for them.

    Memory held: at most ``cache_size x batch_bytes`` plus the scheduler's working set.

    Args:
        cache_size (int): batches held or computing at most.
        num_workers (int): batches computed at once on local schedulers, at most the cores
            (at least 2); a cluster's threads decide its own.

    Example:
        >>> cache = PreCache(cache_size=8, num_workers=2)
        >>> # pipeline = source + gp.RandomLocation() + cache + gp.tensorflow.Train(...)
    """

    lazy = True

    def __init__(self, cache_size: int = 50, num_workers: int = 20) -> None:
        if cache_size < 1 or num_workers < 1:
            raise ValueError(
                f"PreCache: cache_size and num_workers must be >= 1, got {cache_size} and "
                f"{num_workers}"
            )
        self.cache_size = cache_size
        self.num_workers = num_workers
        self._prefetcher: BatchPrefetcher | None = None
        self._state = None

    def setup(self) -> None:
        self._close()

    def provide(self, request: BatchRequest) -> Batch:
        upstream = self.get_upstream_provider()
        scheduler = current_scheduler()
        if request.sequence is None:
            return upstream.request_batch(request).compute(scheduler=scheduler)
        base, index = request.sequence
        template = request.copy()
        state = (template, base, index, id(scheduler) if not isinstance(scheduler, str)
                 else scheduler)
        if self._prefetcher is None or not self._continues(state):
            self._close()
            # Plan the first batch here, before fanning out: a node's error (or a numpy node
            # learning its outputs, see numpy_nodes) happens once, in the driver.
            planned = {index: upstream.request_batch(template.in_sequence(base, index))}

            def plan(i: int, template=template, base=base) -> Batch:
                if i in planned:
                    return planned.pop(i)
                return upstream.request_batch(template.in_sequence(base, i))

            self._prefetcher = BatchPrefetcher(plan, scheduler, self.cache_size,
                                               self.num_workers, start=index)
        self._state = state
        return self._prefetcher.get(index)

    def _continues(self, state) -> bool:
        template, base, index, scheduler = state
        old_template, old_base, old_index, old_scheduler = self._state
        return (template == old_template and base == old_base and index == old_index + 1
                and scheduler == old_scheduler)

    def teardown(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
        self._prefetcher = None
        self._state = None
