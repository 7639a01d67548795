"""gunpowder's consistency checks: each violation names the node, the key and the ROIs."""

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GT")


def build_request(key, offset, shape, voxel_size=None):
    request = gp.BatchRequest(random_seed=1)
    request[key] = gp.ArraySpec(roi=gp.Roi(offset, shape), voxel_size=voxel_size)
    return request


@pytest.fixture
def source():
    return array_source(RAW, position_data((10, 10, 10)), voxel_size=(4, 2, 2), offset=(8, 0, 0))


def test_request_outside_provided_roi(source):
    with gp.build(source, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError) as error:
            p.request_batch(build_request(RAW, (0, 0, 0), (8, 4, 4)))
    message = str(error.value)
    assert "ArraySource" in message and "RAW" in message
    assert "[0:8, 0:4, 0:4]" in message and "[8:48, 0:20, 0:20]" in message


def test_request_for_unknown_key(source):
    with gp.build(source, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match=r"asked for GT.*provides"):
            p.request_batch(build_request(GT, (8, 0, 0), (4, 2, 2)))


def test_voxel_size_mismatch(source):
    with gp.build(source, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match=r"RAW requested at voxel size \(2, 2, 2\)"):
            p.request_batch(build_request(RAW, (8, 0, 0), (8, 4, 4), voxel_size=(2, 2, 2)))


def test_roi_shape_not_multiple_of_voxel_size(source):
    with gp.build(source, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match="not a multiple of the voxel size"):
            p.request_batch(build_request(RAW, (8, 0, 0), (6, 4, 4)))


def test_roi_not_aligned_to_voxel_grid(source):
    with gp.build(source, scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match="not aligned to the voxel grid"):
            p.request_batch(build_request(RAW, (10, 0, 0), (8, 4, 4)))


class WrongRoi(gp.BatchFilter):
    """Returns the upstream array at a ROI other than the requested one."""

    lazy = True

    def prepare(self, request):
        upstream = request.copy()
        upstream[RAW].roi = upstream[RAW].roi.grow((4, 2, 2), (4, 2, 2))
        return upstream

    def process(self, batch, request):
        out = gp.Batch()
        out[RAW] = batch[RAW]
        return out

    def provide(self, request):
        # Skip BatchFilter's final crop to show the contract check.
        upstream = self.prepare(request.copy())
        batch = self.get_upstream_provider().request_batch(upstream)
        return self.process(batch, request)


def test_node_returning_wrong_roi_is_named(source):
    with gp.build(source + WrongRoi(), scheduler="sync") as p:
        with pytest.raises(gp.BatchError) as error:
            p.request_batch(build_request(RAW, (16, 4, 4), (8, 4, 4)))
    message = str(error.value)
    assert message.startswith("WrongRoi: RAW was requested with ROI [16:24, 4:8, 4:8]")
    assert "[12:28, 2:10, 2:10]" in message


class WrongDtype(gp.BatchFilter):
    lazy = True

    def setup(self):
        self.updates(RAW, self.spec[RAW].copy())

    def process(self, batch, request):
        spec = batch[RAW].spec.copy()
        spec.dtype = np.dtype(np.float32)
        batch[RAW] = gp.Array(batch[RAW].data.astype(np.float32), spec)


def test_node_returning_wrong_dtype_is_named(source):
    with gp.build(source + WrongDtype(), scheduler="sync") as p:
        with pytest.raises(gp.BatchError, match=r"WrongDtype: RAW was expected as int64.*float32"):
            p.request_batch(build_request(RAW, (8, 0, 0), (8, 4, 4)))


class Fails(gp.BatchFilter):
    lazy = True

    def process(self, batch, request):
        raise ZeroDivisionError("boom")


def test_unexpected_exception_is_wrapped_with_node_name(source):
    with gp.build(source + Fails(), scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match="Fails failed on request") as error:
            p.request_batch(build_request(RAW, (8, 0, 0), (8, 4, 4)))
    assert isinstance(error.value.__cause__, ZeroDivisionError)


def test_lazy_batch_is_not_computed(source):
    with gp.build(source, scheduler="sync") as p:
        batch = p.request_lazy_batch(build_request(RAW, (8, 0, 0), (8, 4, 4)))
    assert isinstance(batch[RAW].data, da.Array)
    np.testing.assert_array_equal(
        batch[RAW].data.compute(), position_data((10, 10, 10))[0:2, 0:2, 0:2]
    )
