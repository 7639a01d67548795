"""PreCache's prefetcher at gunpowder users' settings (num_workers 20, 40 on two cores):
batches are planned lazily and in order, the first computes alone, then at most
``max_active`` compute at once with one planned ahead, the threads do not grow with
num_workers, a planning error costs only its batch, and closing cancels what is in flight.
No assertion here is about speed."""

import concurrent.futures
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp import scheduling
from daskgp.scheduling import BatchPrefetcher, PriorityPool

KEY = gp.ArrayKey("VALUES")
CHUNKS = 4


def _batch(parts) -> gp.Batch:
    batch = gp.Batch()
    batch[KEY] = gp.Array(da.concatenate(parts), gp.ArraySpec(nonspatial=True))
    return batch


def _expected(index):
    return [index * 100 + c for c in range(CHUNKS) for _ in range(4)]


class GatedBatches:
    """Batch *i*'s tasks wait for ``open(i)``; records what was planned and what ran."""

    def __init__(self, fail_planning=()):
        self.lock = threading.Lock()
        self.gates: dict[int, threading.Event] = {}
        self.planned: list[int] = []
        self.running: set[int] = set()
        self.ran: list[int] = []
        self.fail_planning = set(fail_planning)

    def gate(self, index) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(index, threading.Event())

    def open(self, index) -> None:
        self.gate(index).set()

    def task(self, index, chunk):
        with self.lock:
            self.running.add(index)
        self.gate(index).wait()
        with self.lock:
            self.ran.append(index)
        return np.full(4, index * 100 + chunk)

    def plan(self, index):
        with self.lock:
            self.planned.append(index)
        if index in self.fail_planning:
            raise ValueError(f"cannot plan batch {index}")
        return _batch([da.from_delayed(dask.delayed(self.task, pure=False)(index, c), (4,), int)
                       for c in range(CHUNKS)])


def wait_until(condition, what: str, seconds: float = 60.0) -> None:
    """Wait for ``condition()`` (a liveness guard, not a speed assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def precache_threads():
    return [t for t in threading.enumerate() if t.name.startswith("daskgp-precache")]


class WidePool(PriorityPool):
    """A PriorityPool with a thread for every task of the batches computing, so that tasks
    waiting for their gate never keep another batch's tasks from running."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers * CHUNKS * 2)


@pytest.mark.parametrize("num_workers", [1, 2, 20, 40])
def test_lazy_ordered_planning_and_a_cap_on_batches_computing(num_workers, monkeypatch):
    monkeypatch.setattr(scheduling, "PriorityPool", WidePool)
    batches = GatedBatches()
    prefetcher = BatchPrefetcher(batches.plan, "threads", cache_size=40,
                                 num_workers=num_workers)
    cap = prefetcher._max_active
    assert cap == min(num_workers, max(2, scheduling.usable_cores()))
    try:
        getter = concurrent.futures.ThreadPoolExecutor(1)
        for index in range(4):
            result = getter.submit(prefetcher.get, index)
            # Batches index .. index + cap - 1 compute, the next one is planned and waits.
            wait_until(lambda index=index: len(batches.planned) == index + cap + 1,
                       f"batches up to {index + cap} planned")
            # The first batch computes alone, then batches index .. index + cap - 1.
            computing = 1 if index == 0 else cap
            started = set(range(index + computing))
            wait_until(lambda started=started: batches.running == started,
                       f"batches {index} to {index + computing - 1} computing")
            time.sleep(0.1)  # give a wrong implementation the chance to plan or start more
            with batches.lock:
                assert batches.planned == list(range(index + cap + 1))
                assert batches.running == started
            assert prefetcher._active == computing
            # Threads: the computing batches and the one planned ahead, whatever num_workers.
            assert len(precache_threads()) <= cap + 1
            batches.open(index)
            np.testing.assert_array_equal(result.result(timeout=60)[KEY].data,
                                          _expected(index))
        getter.shutdown()
    finally:
        for index in range(100):
            batches.open(index)
        prefetcher.close()
    assert not precache_threads()


def test_a_planning_error_costs_only_its_batch():
    batches = GatedBatches(fail_planning={1})
    for index in range(10):
        batches.open(index)
    prefetcher = BatchPrefetcher(batches.plan, "threads", cache_size=6, num_workers=20)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as getter:
            assert getter.submit(prefetcher.get, 0).result(timeout=60)[KEY].data.tolist() \
                == _expected(0)
            with pytest.raises(ValueError, match="cannot plan batch 1"):
                getter.submit(prefetcher.get, 1).result(timeout=60)
            # The batches after it still start (they waited for batch 1's turn).
            for index in (2, 3):
                batch = getter.submit(prefetcher.get, index).result(timeout=60)
                assert batch[KEY].data.tolist() == _expected(index)
    finally:
        prefetcher.close()


@pytest.mark.parametrize("num_workers", [2, 40])
def test_close_cancels_queued_tasks_instead_of_running_them(num_workers):
    """Leaving build() behind PreCache(40, N): the in-flight batches' queued tasks never run,
    the planned-ahead batch never computes, later batches are never planned."""
    batches = GatedBatches()
    batches.open(0)
    delivered = threading.Event()

    def plan(index):
        # Batch 0 delivered first, its last task included: gated tasks of later batches on
        # the pool's threads would leave none to finish it.
        if index > 0 and not delivered.wait(60):
            raise AssertionError("batch 0 was never delivered")
        return batches.plan(index)

    prefetcher = BatchPrefetcher(plan, "threads", cache_size=40, num_workers=num_workers)
    cap = prefetcher._max_active
    prefetcher.get(0)
    delivered.set()
    wait_until(lambda: len(batches.planned) == cap + 2, "the next batches planned")
    wait_until(lambda: prefetcher._active == cap, "the next batches computing")
    wait_until(lambda: len(batches.running) > 1, "the next batches' tasks running")
    closer = threading.Thread(target=prefetcher.close)
    closer.start()
    wait_until(lambda: prefetcher._pool._cancelled, "the pool cancelled")
    for index in range(100):
        batches.open(index)  # the tasks already running may now finish
    closer.join(timeout=60)
    assert not closer.is_alive()
    with batches.lock:
        later = [index for index in batches.ran if index > 0]
        planned = list(batches.planned)
    assert planned == list(range(cap + 2))
    # At most the tasks that were running (one per pool thread) finished; computing the
    # batches in flight would have run cap x CHUNKS tasks.
    assert len(later) <= scheduling.usable_cores() < cap * CHUNKS + 1
    assert cap + 1 not in later


def _slow_full(index, chunk):
    time.sleep(0.1)
    return np.full(4, index * 100 + chunk)


class WatchedClient:
    """A real ``distributed.Client`` that records each batch's ``compute`` (its priority)
    and how many batches have futures unfinished at once."""

    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.priorities: list = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.submitted: list = []  # each batch's futures
        self.earlier_done: list = []  # per compute: whether every earlier future had finished

    def __getattr__(self, name):
        return getattr(self.client, name)

    def compute(self, data, priority=0):
        with self.lock:
            self.earlier_done.append(all(f.done() for fs in self.submitted for f in fs))
        futures = self.client.compute(data, priority=priority)
        remaining = [len(futures)]
        with self.lock:
            self.submitted.append(futures)
            self.priorities.append(priority)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

        def done(_future):
            with self.lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    self.in_flight -= 1

        for future in futures:
            future.add_done_callback(done)
        return futures


@pytest.mark.parametrize("num_workers", [1, 40])
def test_cluster_batches_in_flight_are_capped_at_its_threads(cluster_client, num_workers):
    """On a distributed.Client the cluster's threads (at least 2) decide the batches in flight,
    whatever num_workers (the first alone); they are submitted in request order, earlier ones
    with higher priority; the values and order are the same."""
    client = WatchedClient(cluster_client)

    def plan(index):
        return _batch([da.from_delayed(dask.delayed(_slow_full, pure=False)(index, c), (4,),
                                       int) for c in range(CHUNKS)])

    prefetcher = BatchPrefetcher(plan, client, cache_size=40, num_workers=num_workers)
    threads = sum(cluster_client.nthreads().values())
    assert prefetcher._max_active == max(2, threads)
    try:
        for index in range(8):
            assert prefetcher.get(index)[KEY].data.tolist() == _expected(index)
    finally:
        prefetcher.close()
    assert 1 < client.most_in_flight <= prefetcher._max_active
    assert client.priorities == [-i for i in range(len(client.priorities))]
    # The first batch computed alone: the second was submitted once it had finished.
    assert client.earlier_done[:2] == [True, True]
    assert not precache_threads()
