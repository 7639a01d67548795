"""Failures inside tasks: named errors with the original traceback; lost workers recomputed."""

import os
import signal
import time

import numpy as np
import pytest

import daskgp as gp
from tests.test_numpy_nodes import AddNoise, PositionSource

RAW = gp.ArrayKey("RAW")
NOISY = gp.ArrayKey("NOISY")


class Explodes(gp.BatchFilter):
    """A numpy node whose process fails inside its task."""

    def process(self, batch, request):
        return _fail_deep_inside(batch)


def _fail_deep_inside(batch):
    raise FloatingPointError("the voxels overflowed")


class Slow(gp.BatchFilter):
    """A numpy node that takes long enough for a worker to be killed under it."""

    def process(self, batch, request):
        time.sleep(1.5)
        batch[RAW].data = batch[RAW].data * 2


def make_request(seed=1):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (40, 20, 20))
    return request


def test_task_error_names_the_node_and_keeps_the_traceback(scheduler):
    with gp.build(PositionSource() + Explodes(), scheduler=scheduler) as p:
        with pytest.raises(gp.TaskError) as error:
            p.request_batch(make_request())
    message = str(error.value)
    assert message.startswith("Explodes: a task failed with FloatingPointError")
    assert "the voxels overflowed" in message
    assert "_fail_deep_inside" in message, "the original traceback is part of the message"


def test_task_error_surfaces_through_precache():
    pipeline = PositionSource() + Explodes() + gp.PreCache(cache_size=2, num_workers=2)
    with gp.build(pipeline, scheduler="threads") as p:
        request = make_request()
        request.random_seed = None
        with pytest.raises(gp.TaskError, match="Explodes"):
            p.request_batch(request)


def test_killed_worker_still_delivers_the_batches_in_order():
    distributed = pytest.importorskip("distributed")
    pipeline = PositionSource() + AddNoise() + Slow() + gp.PreCache(cache_size=2, num_workers=1)
    request = gp.BatchRequest()
    request.add(RAW, (40, 20, 20))
    request.add(gp.ArrayKey("NOISY"), (40, 20, 20))
    with gp.build(PositionSource() + AddNoise() + Slow(), scheduler="sync", seed=4) as p:
        expected = [p.request_batch(request) for _ in range(3)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        with gp.build(pipeline, client=client, seed=4) as p:
            first = p.request_batch(request)
            # batches 1 and 2 are now computing; kill the worker processes that run them
            deadline = time.monotonic() + 10
            while not any(client.processing().values()) and time.monotonic() < deadline:
                time.sleep(0.05)
            busy = [addr for addr, tasks in client.processing().items() if tasks]
            assert busy, "the next batches should be computing on the cluster"
            pids = client.run(os.getpid, workers=busy)
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
            rest = [p.request_batch(request) for _ in range(2)]
    for got, want in zip([first, *rest], expected, strict=True):
        for key in want.arrays:
            np.testing.assert_array_equal(got[key].data, want[key].data)


class ExplodesLoudly(gp.BatchFilter):
    """A numpy node that fails with a huge message (e.g. an array's repr), counting its calls."""

    calls = 0

    def process(self, batch, request):
        ExplodesLoudly.calls += 1
        raise ValueError("bad values: " + repr(list(range(5000))))


def test_numpy_node_fails_once_in_the_driver_before_precache_fans_out():
    ExplodesLoudly.calls = 0
    pipeline = PositionSource() + ExplodesLoudly() + gp.PreCache(cache_size=4, num_workers=2)
    with gp.build(pipeline, scheduler="threads") as p:
        request = make_request()
        request.random_seed = None
        with pytest.raises(gp.TaskError) as error:
            p.request_batch(request)
    assert ExplodesLoudly.calls == 1, "the error was raised before other batches were planned"
    message = str(error.value)
    assert message.startswith("ExplodesLoudly: a task failed with ValueError: bad values: [0, 1,")
    assert "characters cut" in message and len(message) < 8000
    assert "in process" in message, "the node's frame of the traceback is kept"
    assert isinstance(error.value.__cause__, ValueError)
