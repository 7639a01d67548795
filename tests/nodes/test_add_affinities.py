"""AddAffinities: equal to gunpowder 1.5.0's outputs (tests/data/label_nodes.npz), chunking-
invariant, lazy, with gunpowder's ROI growth and shrink."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, run_case
from tests.helpers import array_source

CASES = ["aff_nearest", "aff_long_masks", "aff_anisotropic_mask_only", "aff_no_mask_ones"]


def _factory(name):
    params = case(name)["params"]

    def make(keys):
        return gp.AddAffinities(params["neighborhood"], keys["labels"], keys["affinities"],
                                labels_mask=keys.get("labels_mask"),
                                unlabelled=keys.get("unlabelled"),
                                affinities_mask=keys.get("affinities_mask"),
                                dtype=params.get("dtype", "uint8"))
    return make


@pytest.mark.parametrize("chunks", [None, (7, 9, 11), (3, 40, 5)])
@pytest.mark.parametrize("name", CASES)
def test_equals_gunpowder_for_any_chunking(name, chunks):
    outputs, expected = run_case(name, _factory(name), chunks=chunks)
    assert set(outputs) == set(expected)
    for key, value in expected.items():
        assert outputs[key].dtype == value.dtype, key
        np.testing.assert_array_equal(outputs[key], value, err_msg=f"{name}/{key}")
    # The fixtures are not trivial: both affinity values occur.
    assert 0 < expected["affinities"].mean() < 1


def test_provided_roi_shrinks_and_request_grows_by_the_neighbourhood():
    labels, affs = gp.ArrayKey("LABELS"), gp.ArrayKey("AFFS")
    seen = []

    class Record(gp.BatchFilter):
        lazy = True

        def prepare(self, request):
            seen.append(request[labels].roi)

    source = array_source(labels, np.ones((10, 20, 20), np.uint64), voxel_size=(2, 1, 1))
    node = gp.AddAffinities([[-1, 0, 0], [0, -3, 0], [0, 0, 2]], labels, affs)
    request = gp.BatchRequest(random_seed=0)
    request[affs] = gp.ArraySpec(roi=gp.Roi((4, 5, 5), (8, 10, 10)))
    with gp.build(source + Record() + node, scheduler="sync") as p:
        assert p.spec[affs].roi == gp.Roi((2, 3, 0), (18, 17, 18))
        assert p.spec[affs].dtype == np.uint8
        batch = p.request_lazy_batch(request)
    assert seen == [gp.Roi((2, 2, 5), (10, 13, 12))]
    assert batch[affs].is_lazy and batch[affs].data.shape == (3, 4, 10, 10)
    assert any(name.startswith("add-affinities") for name in batch[affs].data.dask.layers)
    np.testing.assert_array_equal(batch[affs].data.compute(), 1)


def test_ids_beyond_32_bits_are_compared_in_their_own_dtype():
    labels, affs = gp.ArrayKey("LABELS"), gp.ArrayKey("AFFS")
    # gunpowder's int32 cast would make these equal (both 5) and connect them.
    data = np.array([[5, 2**32 + 5, 2**32 + 5]], dtype=np.uint64)
    source = gp.ArraySource(labels, da.from_array(data, chunks=(1, 2)))
    request = gp.BatchRequest(random_seed=0)
    request[affs] = gp.ArraySpec(roi=gp.Roi((0, 1), (1, 2)))
    with gp.build(source + gp.AddAffinities([[0, -1]], labels, affs), scheduler="sync") as p:
        np.testing.assert_array_equal(p.request_batch(request)[affs].data, [[[0, 1]]])


def test_bad_neighbourhood_and_missing_labels_fail_clearly():
    labels, affs = gp.ArrayKey("LABELS"), gp.ArrayKey("AFFS")
    with pytest.raises(gp.PipelineSetupError, match=r"AFFS.*2D or 3D"):
        gp.AddAffinities([-1, 0, 0], labels, affs)
    with pytest.raises(gp.PipelineSetupError, match="whole voxel offsets"):
        gp.AddAffinities([[-0.5, 0]], labels, affs)
    other = gp.ArrayKey("OTHER")
    source = array_source(other, np.zeros((4, 4, 4), np.uint64))
    with pytest.raises(gp.PipelineSetupError, match=r"AddAffinities.*LABELS.*not provided"):
        with gp.build(source + gp.AddAffinities([[-1, 0, 0]], labels, affs)):
            pass
