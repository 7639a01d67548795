"""PreCache: ordered, bit-identical batch sequences on every scheduler and worker count."""

import multiprocessing
import threading

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data
from tests.test_numpy_nodes import AddNoise, PositionSource

RAW = gp.ArrayKey("RAW")
NOISY = gp.ArrayKey("NOISY")


def noise_request():
    request = gp.BatchRequest()
    request.add(RAW, (40, 20, 20))
    request.add(NOISY, (40, 20, 20))
    return request


def sequence(pipeline, scheduler, n=6, seed=11):
    with gp.build(pipeline, scheduler=scheduler, seed=seed) as p:
        return [p.request_batch(noise_request()) for _ in range(n)]


def assert_same_sequence(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        for key in (RAW, NOISY):
            np.testing.assert_array_equal(batch_a[key].data, batch_b[key].data)


@pytest.fixture(scope="module")
def reference():
    """The sequence without PreCache, computed synchronously."""
    return sequence(PositionSource() + AddNoise(), "sync")


@pytest.mark.parametrize("num_workers", [1, 2, 40])
def test_same_sequence_on_every_scheduler_and_worker_count(reference, scheduler, num_workers):
    pipeline = PositionSource() + AddNoise() + gp.PreCache(cache_size=5, num_workers=num_workers)
    batches = sequence(pipeline, scheduler)
    assert_same_sequence(batches, reference)
    assert not batches[0][NOISY].is_lazy
    noise = [b[NOISY].data - b[RAW].data for b in batches]
    assert not np.array_equal(noise[0], noise[1]), "consecutive batches must differ"


def test_changed_request_restarts_the_cache_and_is_answered_correctly():
    source = array_source(RAW, position_data((20, 20, 20)))
    with gp.build(source + gp.PreCache(cache_size=3, num_workers=2), scheduler="threads") as p:
        small = gp.BatchRequest()
        small.add(RAW, (4, 4, 4))
        large = gp.BatchRequest()
        large.add(RAW, (6, 6, 6))
        assert p.request_batch(small)[RAW].data.shape == (4, 4, 4)
        np.testing.assert_array_equal(p.request_batch(large)[RAW].data,
                                      position_data((6, 6, 6)))
        assert p.request_batch(small)[RAW].data.shape == (4, 4, 4)


def test_explicitly_seeded_requests_are_computed_on_demand():
    pipeline = PositionSource() + AddNoise() + gp.PreCache(cache_size=3, num_workers=2)
    with gp.build(pipeline, scheduler="threads") as p:
        request = noise_request()
        request.random_seed = 5
        first = p.request_batch(request)
        again = p.request_batch(request)
    np.testing.assert_array_equal(first[NOISY].data, again[NOISY].data)


@pytest.mark.parametrize("scheduler_name", ["threads", "processes"])
def test_build_exit_leaves_no_threads_or_processes_behind(scheduler_name):
    threads_before = threading.active_count()
    children_before = len(multiprocessing.active_children())
    pipeline = PositionSource() + AddNoise() + gp.PreCache(cache_size=6, num_workers=3)
    with gp.build(pipeline, scheduler=scheduler_name, seed=1) as p:
        p.request_batch(noise_request())
        assert threading.active_count() > threads_before
    assert threading.active_count() == threads_before
    assert not [t for t in threading.enumerate() if t.name.startswith("daskgp-")]
    assert len(multiprocessing.active_children()) == children_before
