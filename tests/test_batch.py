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
