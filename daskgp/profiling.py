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


class Timing:
    """gunpowder's stopwatch for one node's method: ``start()``/``stop()`` accumulate.

    Args:
        node (BatchProvider or str): the node (its class name is kept) or a node name.
        method_name (str, optional): the method timed (``"prepare"``, ``"process"``, ...).

    Example:
        >>> timing = Timing("Normalize", "process")
        >>> timing.start(); timing.stop()
        >>> timing.get_node_name(), timing.elapsed() >= 0
        ('Normalize', True)
    """

    def __init__(self, node, method_name: str | None = None) -> None:
        self._name = node if isinstance(node, str) else type(node).__name__
        self._method_name = method_name
        self._start = 0.0
        self._first_start = 0.0
        self._last_stop = 0.0
        self._time = 0.0

    @classmethod
    def of_duration(cls, node: str, method_name: str | None, seconds: float) -> Timing:
        """A stopped timing of ``seconds`` that ended now."""
        timing = cls(node, method_name)
        timing._last_stop = time.time()
        timing._first_start = timing._last_stop - seconds
        timing._time = seconds
        return timing

    def start(self) -> None:
        """Start (or resume) timing."""
        self._start = time.time()
        if self._first_start == 0:
            self._first_start = self._start

    def stop(self) -> None:
        """Stop timing; the time since ``start()`` is added to ``elapsed()``."""
        if self._start == 0:
            return
        now = time.time()
        self._time += now - self._start
        self._start = 0.0
        self._last_stop = now

    def elapsed(self) -> float:
        """Seconds accumulated between ``start()`` and ``stop()`` calls."""
        if self._start == 0:
            return self._time
        return self._time + (time.time() - self._start)

    def span(self) -> tuple[float, float]:
        """Timestamps of the first ``start()`` and the last ``stop()``."""
        return self._first_start, self._last_stop

    def get_node_name(self) -> str:
        """The timed node's name."""
        return self._name

    def get_method_name(self) -> str | None:
        """The timed method's name."""
        return self._method_name


class TimingSummary:
    """Repeated timings of one node's method, with gunpowder's statistics.

    Example:
        >>> summary = TimingSummary()
        >>> summary.add(Timing.of_duration("Normalize", "process", 0.5))
        >>> summary.counts(), summary.mean()
        (1, 0.5)
    """

    def __init__(self) -> None:
        self.timings: list[Timing] = []
        self.times: list[float] = []

    def add(self, timing: Timing) -> None:
        """Add one timing."""
        self.timings.append(timing)
        self.times.append(timing.elapsed())

    def merge(self, other: TimingSummary) -> None:
        """Add the timings of ``other``."""
        for timing in other.timings:
            self.add(timing)

    def counts(self) -> int:
        """How many timings."""
        return len(self.times)

    def min(self) -> float:
        """Shortest time in seconds."""
        return float(min(self.times))

    def max(self) -> float:
        """Longest time in seconds."""
        return float(max(self.times))

    def mean(self) -> float:
        """Mean time in seconds."""
        return float(sum(self.times) / len(self.times))

    def median(self) -> float:
        """Median time in seconds."""
        import statistics

        return float(statistics.median(self.times))


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
        self._summaries: dict[tuple[str, str | None], TimingSummary] = {}

    def add(self, node, phase: str | None = None, seconds: float | None = None) -> None:
        """Add ``seconds`` to ``node``'s ``phase``; or, as in gunpowder, ``add(timing)``."""
        if isinstance(node, Timing):
            timing = node
        else:
            timing = Timing.of_duration(node, phase, seconds)
        name, method = timing.get_node_name(), timing.get_method_name()
        self.seconds[name][method] += timing.elapsed()
        self._summaries.setdefault((name, method), TimingSummary()).add(timing)

    def merge_with(self, other: ProfilingStats) -> None:
        """Add ``other``'s timings, task counts and batches to these."""
        for summary in other._summaries.values():
            for timing in summary.timings:
                self.add(timing)
        for node, count in other.tasks.items():
            self.tasks[node] += count
        self.batches += other.batches

    def get_timing_summaries(self) -> dict[tuple[str, str | None], TimingSummary]:
        """``{(node name, method name): TimingSummary}`` (gunpowder's accessor)."""
        return self._summaries

    def get_timing_summary(self, node_name: str, method_name: str | None = None
                           ) -> TimingSummary:
        """The ``TimingSummary`` of ``node_name``'s ``method_name`` (``"prepare"``,
        ``"process"``, ``"provide"``, or ``"compute"``: its tasks' summed durations)."""
        if (node_name, method_name) not in self._summaries:
            raise RuntimeError(
                f"no timing summary for node {node_name}, method {method_name}; there are "
                f"{sorted(self._summaries, key=str)}"
            )
        return self._summaries[(node_name, method_name)]

    def span(self) -> tuple[float, float]:
        """Timestamps of the first start and the last stop over all timings."""
        spans = [t.span() for summary in self._summaries.values() for t in summary.timings]
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def span_time(self) -> float:
        """Seconds between the first start and the last stop over all timings."""
        start, stop = self.span()
        return stop - start

    def add_tasks(self, records, prefixes: dict[str, str]) -> None:
        """Add task records ``(key, start, stop)``; key prefixes map to node names."""
        for key, start, stop in records:
            prefix = key_split(key)
            node = prefixes.get(prefix, f"dask: {prefix}")
            self.add(node, "compute", stop - start)
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
