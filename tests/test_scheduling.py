"""BatchPrefetcher and PriorityPool: earlier batches first, bounded batches in flight, closing
cancels what is in flight."""

import collections
import functools
import os
import subprocess
import sys
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp.scheduling import BatchPrefetcher, PriorityPool, usable_cores

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
        assert prefetcher._max_active <= min(num_workers, 2 + usable_cores())
    finally:
        prefetcher.close()


def test_the_first_batch_runs_before_later_ones():
    recorder = Recorder(chunks=8, seconds=0.01)
    prefetcher = BatchPrefetcher(recorder.plan, "threads", cache_size=20, num_workers=20)
    try:
        prefetcher.get(0)
        with recorder.lock:
            log = list(recorder.log)
        # Batch 0 computed alone: all its tasks ran before any later batch's.
        assert log[:8] == [0] * 8
        assert log.count(0) == 8
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


def _compute_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("daskgp-compute")]


def test_a_big_node_counts_only_the_cores_this_process_may_use(monkeypatch):
    """A job given this machine's cores on a 64-core node (os.cpu_count() says 64): PreCache
    computes as many batches at once, on as many threads, as the cores it may run on."""
    allowed = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() <= allowed
    prefetcher = BatchPrefetcher(Recorder().plan, "threads", cache_size=40, num_workers=40)
    try:
        assert prefetcher._max_active == max(2, usable_cores())
        assert len(_compute_threads()) == usable_cores()
    finally:
        prefetcher.close()
    assert not _compute_threads()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux CPU affinity")
def test_cpu_affinity_narrows_the_pool_and_the_cap():
    """Under ``taskset -c 0`` (here: this thread's affinity, which the pool's threads inherit)
    one core: one compute thread, two batches at once (one's serial tail overlaps the
    next's), whatever num_workers; the batches are still right."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert usable_cores() == 1
        recorder = Recorder(chunks=3, seconds=0.0)
        prefetcher = BatchPrefetcher(recorder.plan, "threads", cache_size=40, num_workers=20)
        try:
            assert prefetcher._max_active == 2
            assert len(_compute_threads()) == 1
            for index in range(3):
                values = prefetcher.get(index)[KEY].data
                assert values.tolist() == [index * 100 + c for c in range(3) for _ in range(4)]
        finally:
            prefetcher.close()
    finally:
        os.sched_setaffinity(0, before)
    assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_fixed_mmap_threshold_reuses_batch_sized_memory_without_page_faults():
    """After ``fix_mmap_threshold()`` a batch-sized array freed and made again reuses heap
    memory: no page faults per round (at the old 64 KiB threshold: ~780 here, with numpy's
    huge pages; one per 4 KiB page, ~6,000, without them)."""
    script = """
import resource, numpy as np
from daskgp.scheduling import fix_mmap_threshold
assert fix_mmap_threshold()
def faults(rounds):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        a = np.ones((84, 268, 268), np.float32); a += 1; del a
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds
faults(2)
print(faults(10))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert float(out.stdout) < 50, out.stdout
