import numpy as np

import daskgp as gp
from tests.test_numpy_nodes import AddNoise, PositionSource

RAW = gp.ArrayKey("RAW")
NOISY = gp.ArrayKey("NOISY")


def test_stack_builds_independent_seeded_repetitions_in_one_graph():
    request = gp.BatchRequest(random_seed=3)
    request.add(RAW, (40, 20, 20))
    request.add(NOISY, (40, 20, 20))
    pipeline = PositionSource() + AddNoise() + gp.Stack(3)
    with gp.build(pipeline, scheduler="threads") as p:
        lazy = p.request_lazy_batch(request)
        assert lazy[NOISY].is_lazy
        batch = lazy.compute(scheduler="threads")
        again = p.request_batch(request)
    assert batch[NOISY].data.shape == (3, 10, 10, 10)
    assert batch[NOISY].spec.roi == request[NOISY].roi
    np.testing.assert_array_equal(batch[NOISY].data, again[NOISY].data)
    for r in range(3):
        np.testing.assert_array_equal(batch[RAW].data[r], batch[RAW].data[0])
    noise = batch[NOISY].data - batch[RAW].data
    assert not np.array_equal(noise[0], noise[1])
    assert not np.array_equal(noise[1], noise[2])
