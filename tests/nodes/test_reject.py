"""Reject: never delivers a batch at or below min_masked, deterministic for a seed, bounded with
a clear error, reject_probability seeded."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW, MASK = gp.ArrayKey("RAW"), gp.ArrayKey("MASK")


def _pipeline(mask_data, **reject_kwargs):
    raw = np.arange(mask_data.size, dtype=np.float32).reshape(mask_data.shape)
    sources = (array_source(RAW, raw), array_source(MASK, mask_data)) + gp.MergeProvider()
    return sources + gp.RandomLocation() + gp.Reject(MASK, **reject_kwargs)


def _request(seed):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (4, 8, 8))
    request.add(MASK, (4, 8, 8))
    return request


def _mask():
    mask = np.zeros((8, 32, 32), np.uint8)
    mask[:, 10:20, 12:26] = 1
    return mask


def test_never_delivers_a_batch_at_or_below_min_masked_and_is_deterministic():
    with gp.build(_pipeline(_mask(), min_masked=0.6), scheduler="threads") as p:
        batches = [p.request_batch(_request(seed)) for seed in range(30)]
        again = p.request_batch(_request(7))
    ratios = [b[MASK].data.mean() for b in batches]
    assert min(ratios) > 0.6
    # The raw array is still aligned with the mask it was accepted for.
    offsets = {int(b[RAW].data[0, 0, 0]) for b in batches}
    assert len(offsets) > 10
    np.testing.assert_array_equal(again[RAW].data, batches[7][RAW].data)
    np.testing.assert_array_equal(again[MASK].data, batches[7][MASK].data)


def test_without_reject_most_of_these_locations_fail():
    pipeline = array_source(MASK, _mask()) + gp.RandomLocation()
    request = gp.BatchRequest(random_seed=0)
    request.add(MASK, (4, 8, 8))
    with gp.build(pipeline, scheduler="sync") as p:
        ratios = []
        for seed in range(30):
            request.random_seed = seed
            ratios.append(p.request_batch(request)[MASK].data.mean())
    assert sum(r > 0.6 for r in ratios) < 15


def test_empty_mask_ends_with_a_clear_error():
    pipeline = _pipeline(np.zeros((8, 32, 32), np.uint8), max_attempts=5)
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError,
                           match=r"Reject: no batch with a mean of MASK above min_masked=0.5 "
                                 r"in 5 attempts; the best ratio seen was 0.0000"):
            p.request_batch(_request(0))


def test_reject_probability_zero_accepts_the_first_batch():
    with gp.build(_pipeline(np.zeros((8, 32, 32), np.uint8), reject_probability=0.0),
                  scheduler="sync") as p:
        batch = p.request_batch(_request(0))
    assert batch[MASK].data.mean() == 0


def test_graphs_are_not_supported_yet():
    with pytest.raises(NotImplementedError, match=r"ensure_nonempty.*graphs"):
        gp.Reject(ensure_nonempty=gp.GraphKey("POINTS"))


def test_the_peek_computes_only_the_mask_and_the_batch_reuses_it():
    import dask.array as da

    computed = {"raw": 0, "mask": 0}

    def counting(name):
        def block(x):
            computed[name] += 1
            return x
        return block

    mask = _mask()
    raw = np.zeros(mask.shape, np.float32)
    def source(key, data):
        # meta given: dask does not call the function to guess it.
        lazy = da.from_array(data, chunks=-1).map_blocks(
            counting(str(key).lower()), meta=np.empty((0, 0, 0), data.dtype))
        return gp.ArraySource(key, lazy)

    sources = (source(RAW, raw), source(MASK, mask)) + gp.MergeProvider()
    pipeline = sources + gp.RandomLocation() + gp.Reject(MASK, min_masked=0.6)
    with gp.build(pipeline, scheduler="sync") as p:
        lazy = p.request_lazy_batch(_request(3))
        assert computed["raw"] == 0 and computed["mask"] >= 1
        peeks = computed["mask"]
        lazy.compute(scheduler="sync")
    assert computed == {"raw": 1, "mask": peeks}
