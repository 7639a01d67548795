import math

import dask.array as da
import numpy as np
import pytest

import daskgp as gp

RAW = gp.ArrayKey("RAW")


def spec(offset, shape, voxel_size=(2, 2)):
    return gp.ArraySpec(roi=gp.Roi(offset, shape), voxel_size=voxel_size)


def test_array_checks_shape_against_roi_and_voxel_size():
    with pytest.raises(gp.ArrayError, match=r"shape \(4, 4\).*\(3, 4\)"):
        gp.Array(np.zeros((4, 4)), spec((0, 0), (6, 8)))


def test_array_checks_dtype_against_spec():
    s = spec((0, 0), (8, 8))
    s.dtype = np.uint8
    with pytest.raises(gp.ArrayError, match="float64"):
        gp.Array(np.zeros((4, 4)), s)


def test_crop_selects_world_roi_and_keeps_channels():
    data = np.arange(2 * 5 * 6).reshape(2, 5, 6)
    array = gp.Array(data, spec((10, 20), (10, 12)))
    cropped = array.crop(gp.Roi((12, 24), (4, 6)))
    np.testing.assert_array_equal(cropped.data, data[:, 1:3, 2:5])
    assert cropped.spec.roi == gp.Roi((12, 24), (4, 6))
    with pytest.raises(gp.ArrayError, match="not contained"):
        array.crop(gp.Roi((0, 0), (4, 4)))


def test_batch_crop_merge_and_compute():
    lazy = da.from_array(np.arange(16.0).reshape(4, 4), chunks=2)
    batch = gp.Batch()
    batch[RAW] = gp.Array(lazy, spec((0, 0), (8, 8)))
    assert batch[RAW].is_lazy
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4)))
    cropped = batch.crop(request)
    computed = cropped.compute(scheduler="sync")
    assert not computed[RAW].is_lazy
    np.testing.assert_array_equal(computed[RAW].data, [[5.0, 6.0], [9.0, 10.0]])
    persisted = batch.persist(scheduler="sync")
    assert persisted[RAW].is_lazy
    np.testing.assert_array_equal(persisted[RAW].data.compute(), lazy.compute())

    other = gp.Batch()
    other[RAW] = gp.Array(np.zeros((2, 2)), spec((2, 2), (4, 4)))
    merged = batch.merge(other)
    assert merged[RAW].spec.roi == gp.Roi((2, 2), (4, 4))
    assert batch[RAW].spec.roi == gp.Roi((0, 0), (8, 8))


def test_missing_key_error_names_key():
    with pytest.raises(KeyError, match="RAW"):
        gp.Batch()[RAW]


# --- compute without dask's defensive copy of a fresh one-chunk result -------------------------


def test_compute_arrays_returns_marked_chunks_uncopied_and_others_copied():
    from daskgp.batch import compute_arrays, mark_own_chunk, owns_chunk

    source = np.arange(6.0)
    held = da.from_array(source, chunks=-1)  # its chunk is the source's buffer
    fresh = mark_own_chunk(held * 2)
    view = mark_own_chunk(fresh[::-1])  # a view of the same fresh buffer
    values = compute_arrays([held, fresh, view], scheduler="threads")
    np.testing.assert_array_equal(values[0], source)
    np.testing.assert_array_equal(values[1], source * 2)
    np.testing.assert_array_equal(values[2], source[::-1] * 2)
    assert not np.shares_memory(values[0], source)
    # The two marked results are one buffer in the graph: copied apart.
    assert not np.shares_memory(values[1], values[2])
    assert not owns_chunk(held) and not owns_chunk(fresh.persist())
    with pytest.raises(ValueError, match="one-chunk"):
        mark_own_chunk(da.zeros(4, chunks=2))


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_mutating_a_computed_augmented_batch_changes_no_source_or_later_batch(scheduler):
    """The warp's and SimpleAugment's results come back uncopied: a user writing into a batch
    must still change neither the source's data nor a later batch (also via persist and
    PreCache)."""
    from tests.helpers import array_source

    raw = np.random.default_rng(0).random((12, 40, 40)).astype(np.float32)
    kept = raw.copy()
    request = gp.BatchRequest(random_seed=3)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((2, 10, 10), (8, 20, 20)))
    for augment in ([], [gp.ElasticAugment([4, 10, 10], [0, 2, 2], [0, math.pi / 2])],
                    [gp.ElasticAugment([4, 10, 10], [0, 2, 2], [0, math.pi / 2]),
                     gp.SimpleAugment(transpose_only=[1, 2]),
                     gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1, clip=False)]):
        pipeline = array_source(RAW, raw)
        for node in augment:
            pipeline = pipeline + node
        with gp.build(pipeline, scheduler=scheduler, seed=0) as p:
            first = p.request_batch(request)[RAW].data
            expected = first.copy()
            first[...] = -1
            np.testing.assert_array_equal(raw, kept)
            np.testing.assert_array_equal(p.request_batch(request)[RAW].data, expected)
            lazy = p.request_lazy_batch(request)
            persisted = lazy.persist(scheduler=scheduler)
            for batch in (lazy, persisted, persisted):
                data = batch.compute(scheduler=scheduler)[RAW].data
                np.testing.assert_array_equal(data, expected)
                data[...] = -2
        np.testing.assert_array_equal(raw, kept)
    cached = array_source(RAW, raw) + augment[0] + augment[1] + gp.PreCache(2, 2)
    with gp.build(cached, scheduler=scheduler, seed=0) as p:
        for _ in range(3):
            p.request_batch(request)[RAW].data[...] = -3
    np.testing.assert_array_equal(raw, kept)
