"""Per-node timings: planning time in the driver, and compute time from dask's task records.

``PrintProfilingStats`` turns them into gunpowder's per-node table.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections import defaultdict

from dask.utils import key_split

_collector = contextvars.ContextVar("daskgp_profiling", default=None)


class ProfilingStats:
    """Seconds per (node, phase): ``prepare``/``process``/``provide`` in the driver, ``compute``
    (summed task durations) on the scheduler, and task counts.

    Example:
        >>> stats = ProfilingStats()
        >>> stats.add("Normalize", "process", 0.5)
        >>> stats.add("Normalize", "process", 0.25)
        >>> stats.seconds["Normalize"]["process"]
        0.75
    """

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.tasks: dict[str, int] = defaultdict(int)
        self.batches = 0

    def add(self, node: str, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``node``'s ``phase``."""
        self.seconds[node][phase] += seconds

    def add_tasks(self, records, prefixes: dict[str, str]) -> None:
        """Add task records ``(key, start, stop)``; key prefixes map to node names."""
        for key, start, stop in records:
            prefix = key_split(key)
            node = prefixes.get(prefix, f"dask: {prefix}")
            self.seconds[node]["compute"] += stop - start
            self.tasks[node] += 1

    def table(self) -> str:
        """A text table: per node, mean milliseconds per batch for each phase, tasks/batch."""
        batches = max(self.batches, 1)
        phases = ["prepare", "process", "provide", "compute"]
        lines = [f"{'node':<28}" + "".join(f"{p + ' ms':>13}" for p in phases)
                 + f"{'tasks':>8}"]
        for node, seconds in sorted(self.seconds.items(),
                                    key=lambda item: -sum(item[1].values())):
            cells = "".join(f"{1e3 * seconds.get(p, 0.0) / batches:>13.2f}" for p in phases)
            lines.append(f"{node[:28]:<28}{cells}{self.tasks.get(node, 0) / batches:>8.1f}")
        return f"profiling stats over {self.batches} batch(es), per batch:\n" + "\n".join(lines)


@contextlib.contextmanager
def collecting(stats: ProfilingStats):
    """Record the planning time of every node inside the block into ``stats``."""
    token = _collector.set(stats)
    try:
        yield stats
    finally:
        _collector.reset(token)


@contextlib.contextmanager
def timed(node: str, phase: str):
    """Time the block as ``node``'s ``phase`` when a collector is active (else: nothing)."""
    stats = _collector.get()
    if stats is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        stats.add(node, phase, time.perf_counter() - start)
