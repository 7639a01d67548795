"""``PrintProfilingStats``: prints per-node planning and compute times every n batches."""

from __future__ import annotations

from ..batch import Batch
from ..names import task_prefix
from ..profiling import ProfilingStats, collecting
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler, is_client


class PrintProfilingStats(BatchFilter):
    """Print a table of per-node timings every ``every`` batches, like gunpowder's.

    A materialization boundary: the batch is computed here, under dask's local diagnostics
    (``dask.diagnostics.Profiler``) or, on a ``distributed.Client``, its task stream, so each
    node's compute time is the summed duration of the tasks named after it (``elastic-augment-…``;
    dask's own operations are listed as ``dask: <name>``). Planning time (``prepare``,
    ``process``, ``provide``) is measured in the driver. The last table is kept as ``self.stats``
    and every batch carries its own in ``batch.profiling_stats``.

    Args:
        every (int): print after this many batches (and reset the counts).

    Example:
        >>> stats = PrintProfilingStats(every=10)
    """

    lazy = True

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"PrintProfilingStats: every must be >= 1, got {every}")
        self.every = every
        self.stats = ProfilingStats()

    def setup(self) -> None:
        self._prefixes = {}
        self._collect_prefixes(self.get_upstream_provider())
        self.stats = ProfilingStats()
        self._window = ProfilingStats()

    def _collect_prefixes(self, node) -> None:
        self._prefixes[task_prefix(node.name())] = node.name()
        for upstream in node.get_upstream_providers():
            self._collect_prefixes(upstream)

    def provide(self, request: BatchRequest) -> Batch:
        stats = ProfilingStats()
        stats.batches = 1
        with collecting(stats):
            batch = self.get_upstream_provider().request_batch(request)
        scheduler = current_scheduler()
        if is_client(scheduler):
            from distributed import get_task_stream

            with get_task_stream(scheduler) as stream:
                computed = batch.compute(scheduler=scheduler)
            records = [(t["key"], t["startstops"][-1]["start"], t["startstops"][-1]["stop"])
                       for t in stream.data if t.get("startstops")]
        else:
            from dask.diagnostics import Profiler

            with Profiler() as profiler:
                computed = batch.compute(scheduler=scheduler)
            records = [(r.key, r.start_time, r.end_time) for r in profiler.results]
        stats.add_tasks(records, self._prefixes)
        computed.profiling_stats = stats
        self._accumulate(stats)
        return computed

    def _accumulate(self, stats: ProfilingStats) -> None:
        window = self._window
        window.merge_with(stats)
        if window.batches >= self.every:
            print(window.table(), flush=True)
            self.stats = window
            self._window = ProfilingStats()
