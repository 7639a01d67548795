"""gunpowder-style numpy nodes run unchanged, inside dask tasks, seeded from the request."""

import threading
import time

import dask
import numpy as np
import pytest

import daskgp as gp

RAW = gp.ArrayKey("RAW")
NOISY = gp.ArrayKey("NOISY")


class PositionSource(gp.BatchProvider):
    """A gunpowder-style source: provide() returns numpy data that encodes the world position."""

    def setup(self):
        self.provides(
            RAW,
            gp.ArraySpec(roi=gp.Roi((0, 0, 0), (400, 400, 400)), voxel_size=(4, 2, 2),
                         dtype=np.float64, interpolatable=True),
        )

    def provide(self, request):
        batch = gp.Batch()
        spec = self.spec[RAW].copy()
        spec.roi = request[RAW].roi
        begin, end = spec.roi.begin, spec.roi.end
        z, y, x = np.meshgrid(
            *(np.arange(b, e, v) for b, e, v in zip(begin, end, spec.voxel_size, strict=True)),
            indexing="ij",
        )
        batch[RAW] = gp.Array((z * 1e6 + y * 1e3 + x).astype(np.float64), spec)
        return batch


class AddNoise(gp.BatchFilter):
    """A gunpowder-style filter: mutates numpy data in place, draws from global np.random."""

    def setup(self):
        self.provides(NOISY, self.spec[RAW].copy())

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[RAW] = request[NOISY].copy()
        return deps

    def process(self, batch, request):
        assert isinstance(batch[RAW].data, np.ndarray)
        noisy = batch[RAW].data.copy()
        noisy += np.random.uniform(size=noisy.shape)
        batch[RAW].data += 1  # in place, as old nodes do
        out = gp.Batch()
        out[NOISY] = gp.Array(noisy, batch[RAW].spec.copy())
        out[RAW] = batch[RAW]
        return out


def make_request(seed):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (40, 20, 20))
    request.add(NOISY, (40, 20, 20))
    return request


def expected_position(roi, voxel_size):
    z, y, x = np.meshgrid(
        *(np.arange(b, e, v) for b, e, v in zip(roi.begin, roi.end, voxel_size, strict=True)),
        indexing="ij",
    )
    return z * 1e6 + y * 1e3 + x


def test_old_nodes_run_unchanged_and_lazily():
    pipeline = PositionSource() + AddNoise()
    with gp.build(pipeline, scheduler="sync") as p:
        # The first request runs each numpy node once to learn its outputs' dtypes and
        # channel axes; every request after it builds a lazy graph.
        first = p.request_batch(make_request(1))
        lazy = p.request_lazy_batch(make_request(1))
        assert lazy[RAW].is_lazy and lazy[NOISY].is_lazy
        names = {key[0] if isinstance(key, tuple) else key
                 for key in dict(lazy[NOISY].data.__dask_graph__())}
        assert any(str(name).startswith("add-noise-") for name in names)
        assert any("position-source-" in str(name) for name in names)
        batch = lazy.compute(scheduler="sync")
    for key in (RAW, NOISY):
        np.testing.assert_array_equal(first[key].data, batch[key].data)
    roi = make_request(1)[RAW].roi
    base = expected_position(roi, (4, 2, 2))
    np.testing.assert_array_equal(batch[RAW].data, base + 1)
    noise = batch[NOISY].data - base
    assert noise.min() >= 0 and noise.max() < 1 and noise.std() > 0.1


def test_old_nodes_are_seeded_identically_on_every_scheduler(scheduler):
    pipeline = PositionSource() + AddNoise()
    with gp.build(pipeline, scheduler="sync") as p:
        reference = p.request_batch(make_request(7))
        other_seed = p.request_batch(make_request(8))
    with gp.build(pipeline, scheduler=scheduler) as p:
        batch = p.request_batch(make_request(7))
    np.testing.assert_array_equal(batch[NOISY].data, reference[NOISY].data)
    np.testing.assert_array_equal(batch[RAW].data, reference[RAW].data)
    assert not np.array_equal(other_seed[NOISY].data, reference[NOISY].data)


def test_concurrent_batches_of_old_nodes_stay_deterministic():
    pipeline = PositionSource() + AddNoise()
    with gp.build(pipeline, scheduler="threads") as p:
        lazies = [p.request_lazy_batch(make_request(seed)) for seed in range(8)]
        together = dask.compute(*(b[NOISY].data for b in lazies), scheduler="threads")
        one_by_one = [p.request_batch(make_request(seed))[NOISY].data for seed in range(8)]
    for a, b in zip(together, one_by_one, strict=True):
        np.testing.assert_array_equal(a, b)


class Shrinks(gp.BatchFilter):
    def process(self, batch, request):
        batch[RAW].data = batch[RAW].data[:-1]


def test_numpy_node_returning_wrong_shape_is_named():
    request = gp.BatchRequest(random_seed=1)
    request.add(RAW, (40, 20, 20))
    with gp.build(PositionSource() + Shrinks(), scheduler="sync") as p:
        with pytest.raises(gp.ArrayError, match=r"Shrinks returned RAW with shape \(9, 10, 10\)"):
            p.request_batch(request)


class Sleeps(gp.BatchFilter):
    """A numpy node that draws no random numbers and says so; counts how many of its
    ``process`` calls overlap."""

    uses_global_random = False
    lock = threading.Lock()
    active = 0
    most_active = 0

    def process(self, batch, request):
        with Sleeps.lock:
            Sleeps.active += 1
            Sleeps.most_active = max(Sleeps.most_active, Sleeps.active)
        time.sleep(0.2)
        with Sleeps.lock:
            Sleeps.active -= 1


def test_numpy_nodes_without_global_random_run_in_parallel():
    request = gp.BatchRequest(random_seed=1)
    request.add(RAW, (40, 20, 20))
    Sleeps.most_active = 0
    with gp.build(PositionSource() + Sleeps() + gp.Stack(4), scheduler="threads",
                  seed=0) as p:
        batch = p.request_batch(request)
    assert batch[RAW].data.shape == (4, 10, 10, 10)
    assert Sleeps.most_active >= 2, "their tasks ran one at a time"


class SleepsWithGlobalRandom(Sleeps):
    uses_global_random = True


def test_numpy_nodes_that_may_use_global_random_run_one_at_a_time():
    request = gp.BatchRequest(random_seed=1)
    request.add(RAW, (40, 20, 20))
    Sleeps.most_active = 0
    with gp.build(PositionSource() + SleepsWithGlobalRandom() + gp.Stack(4),
                  scheduler="threads", seed=0) as p:
        p.request_batch(request)
    assert Sleeps.most_active == 1
