"""BatchPrefetcher and PriorityPool: earlier batches first, bounded batches in flight, closing
cancels what is in flight."""

import collections
import functools
import os
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp.scheduling import BatchPrefetcher, PriorityPool

KEY = gp.ArrayKey("VALUES")


def test_priority_pool_runs_lower_priorities_first_and_cancels():
    pool = PriorityPool(1)
    gate = threading.Event()
    order = []
    blocker = pool.submit(0, gate.wait)
    futures = [pool.submit(p, order.append, p) for p in (5, 1, 3, 1)]
    gate.set()
    for future in futures:
        future.result(timeout=10)
    assert blocker.result() is True
    assert order == [1, 1, 3, 5]
    gate.clear()
    pool.submit(0, gate.wait)
    queued = pool.submit(1, order.append, "late")
    pool.cancel()
    gate.set()
    assert queued.cancelled()
    assert pool.submit(0, order.append, "after").cancelled()
    pool.shutdown()
    assert "late" not in order and "after" not in order


class Recorder:
    """Batches of ``chunks`` tasks; each task logs (batch index, time) and sleeps a little."""

    def __init__(self, chunks=6, seconds=0.02):
        self.chunks, self.seconds = chunks, seconds
        self.log = []
        self.lock = threading.Lock()

    def task(self, index, chunk):
        time.sleep(self.seconds)
        with self.lock:
            self.log.append(index)
        return np.full(4, index * 100 + chunk)

    def plan(self, index):
        parts = [da.from_delayed(dask.delayed(self.task, pure=False)(index, c), (4,), int)
                 for c in range(self.chunks)]
        batch = gp.Batch()
        batch[KEY] = gp.Array(da.concatenate(parts), gp.ArraySpec(nonspatial=True))
        return batch


@pytest.mark.parametrize("num_workers", [1, 20, 40])
def test_batches_come_in_order_with_few_in_flight(num_workers):
    recorder = Recorder()
    prefetcher = BatchPrefetcher(recorder.plan, "threads", cache_size=num_workers,
                                 num_workers=num_workers)
    try:
        for index in range(5):
            values = prefetcher.get(index)[KEY].data
            assert values.tolist() == [index * 100 + c for c in range(6) for _ in range(4)]
        with recorder.lock:
            started = set(recorder.log)
        # Only a few batches beyond the five returned have started, however many workers.
        assert max(started) < 5 + prefetcher._max_active
        assert prefetcher._max_active <= min(num_workers, 2 + os.cpu_count())
    finally:
        prefetcher.close()


def test_the_first_batch_runs_before_later_ones():
    recorder = Recorder(chunks=8, seconds=0.01)
    prefetcher = BatchPrefetcher(recorder.plan, "threads", cache_size=20, num_workers=20)
    try:
        prefetcher.get(0)
        with recorder.lock:
            log = list(recorder.log)
        # Batch 0's tasks ran first: later batches fill only the gaps it leaves.
        last_first = max(i for i, b in enumerate(log) if b == 0)
        assert log.count(0) == 8
        assert last_first < 8 + 2 * os.cpu_count()
    finally:
        prefetcher.close()


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_close_cancels_batches_in_flight(scheduler, tmp_path):
    """Leaving build() behind PreCache(40, 10) does not compute the batches in flight: of
    their 40 tasks each, only those already run or running when close() came have run, and
    the batch planned ahead never computes. Each task leaves a file, so this holds on the
    processes pool too (no timing)."""
    prefetcher = BatchPrefetcher(functools.partial(_slow_plan, str(tmp_path)), scheduler,
                                 cache_size=40, num_workers=10)
    prefetcher.get(0)
    prefetcher.close()
    ran = collections.Counter(int(f.name.split("-")[0]) for f in tmp_path.iterdir())
    assert ran[0] == 40
    in_flight = list(range(1, 1 + prefetcher._max_active))
    # Waiting would run every task of the batches in flight; cancelling, a few.
    assert sum(ran[i] for i in in_flight) < 40 * len(in_flight)
    assert ran[in_flight[-1]] < 40
    assert not [i for i in ran if i > in_flight[-1]]


def _slow(index, chunk, marks):
    with open(os.path.join(marks, f"{index}-{chunk}"), "w"):
        pass
    time.sleep(0.05)
    return np.full(4, index * 100 + chunk)


def _slow_plan(marks, index):
    parts = [da.from_delayed(dask.delayed(_slow, pure=False)(index, c, marks), (4,), int)
             for c in range(40)]
    batch = gp.Batch()
    batch[KEY] = gp.Array(da.concatenate(parts), gp.ArraySpec(nonspatial=True))
    return batch
