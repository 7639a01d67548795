"""SimpleAugment: mirrors and transposes as views, aligned across arrays, seeded."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp import Coordinate, Roi
from tests.helpers import array_source, position_data

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")


def decode(values: np.ndarray) -> np.ndarray:
    """Voxel indices (last axis: z, y, x) encoded by ``position_data``."""
    return np.stack([values // 10**8, (values // 10**4) % 10**4, values % 10**4], axis=-1)


def request_at(offset, **shapes) -> gp.BatchRequest:
    """A request with ``shapes`` (key name -> shape), centred, then shifted by ``offset``."""
    request = gp.BatchRequest()
    for name, shape in shapes.items():
        request.add(gp.ArrayKey(name), shape)
    for _, spec in request.items():
        spec.roi = spec.roi.shift(Coordinate(offset))
    return request


def batches(pipeline, request, seeds, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        for seed in seeds:
            request.random_seed = seed
            yield p.request_batch(request)


@pytest.mark.parametrize("mirror", list(itertools.product([0, 1], repeat=3))[::3])
@pytest.mark.parametrize("permutation", list(itertools.permutations(range(3))))
def test_values_are_numpy_flip_and_transpose(mirror, permutation):
    data = position_data((8, 8, 8))
    node = gp.SimpleAugment(mirror_probs=list(mirror), transpose_probs={permutation: 1.0})
    request = request_at((0, 0, 0), RAW=(8, 8, 8))
    (batch,) = batches(array_source(RAW, data) + node, request, [1])
    flipped = np.flip(data, axis=[d for d in range(3) if mirror[d]])
    np.testing.assert_array_equal(batch[RAW].data, flipped.transpose(permutation))
    assert batch[RAW].spec.roi == request[RAW].roi


def test_unequal_extents_read_the_transposed_upstream_roi():
    # Transposing axes of different extent asks upstream for the transposed shape about the
    # centre (gunpowder's rule); the result is the transpose of that read.
    data = position_data((30, 30, 30))
    node = gp.SimpleAugment(mirror_probs=[0, 0, 1], transpose_probs={(1, 0, 2): 1.0})
    request = request_at((10, 10, 10), RAW=(4, 10, 6))
    (batch,) = batches(array_source(RAW, data) + node, request, [5])
    # Total ROI [10:14, 10:20, 10:16], centre (12, 15, 13): the upstream ROI is
    # [7:17, 13:17, 10:16], then mirrored along x within itself.
    upstream = data[7:17, 13:17, 10:16]
    np.testing.assert_array_equal(batch[RAW].data, upstream[:, :, ::-1].transpose(1, 0, 2))


@pytest.mark.parametrize("gt_shift", [(0, 0, 0), (3, -5, 2)])
def test_arrays_with_different_rois_stay_aligned(gt_shift):
    data = position_data((48, 48, 48))
    source = (array_source(RAW, data), array_source(GT, data)) + gp.MergeProvider()
    request = request_at((14, 14, 14), RAW=(12, 20, 20), GT=(6, 8, 8))
    request[GT].roi = request[GT].roi.shift(Coordinate(gt_shift))
    seen = set()
    for batch in batches(source + gp.SimpleAugment(), request, range(16)):
        raw = gp.Array(batch[RAW].data, batch[RAW].spec).crop(request[GT].roi).data
        np.testing.assert_array_equal(raw, batch[GT].data)
        seen.add(batch[GT].data.tobytes())
    assert len(seen) > 4  # the draws really vary


def test_alignment_across_voxel_sizes_and_odd_total_roi():
    # RAW at voxel size 1, GT at 2 over the same world box. RAW's odd extent puts the total
    # ROI's mirror sum off GT's grid; it is snapped, so GT's request stays on its grid.
    source = (
        array_source(RAW, position_data((40, 40, 40))),
        array_source(GT, position_data((20, 20, 20)), voxel_size=(2, 2, 2)),
    ) + gp.MergeProvider()
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=Roi((9, 10, 10), (13, 14, 14)))
    request[GT] = gp.ArraySpec(roi=Roi((12, 12, 12), (8, 8, 10)))
    for batch in batches(source + gp.SimpleAugment(), request, range(12)):
        raw = gp.Array(batch[RAW].data, batch[RAW].spec).crop(request[GT].roi).data
        raw_index = decode(raw) // 2
        gt_index = decode(batch[GT].data).repeat(2, 0).repeat(2, 1).repeat(2, 2)
        np.testing.assert_array_equal(raw_index, gt_index)


def test_channels_are_untouched():
    data = np.stack([position_data((6, 6, 6)) + c * 10**12 for c in range(3)])
    node = gp.SimpleAugment(mirror_probs=[1, 1, 0], transpose_probs={(0, 2, 1): 1.0})
    (batch,) = batches(array_source(RAW, data) + node, request_at((0,) * 3, RAW=(6, 6, 6)), [0])
    expected = data[:, ::-1, ::-1, :].transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(batch[RAW].data, expected)


def test_same_seed_same_batch_and_lazy_views():
    data = da.from_array(position_data((10, 10, 10)), chunks=5)
    pipeline = array_source(RAW, data) + gp.SimpleAugment()
    request = request_at((0,) * 3, RAW=(10, 10, 10))
    first = [b[RAW].data for b in batches(pipeline, request, [7, 8, 9])]
    second = [b[RAW].data for b in batches(pipeline, request, [7, 8, 9])]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    with gp.build(pipeline) as p:
        request.random_seed = 7
        lazy = p.request_lazy_batch(request)[RAW].data
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), first[0])


def test_p_zero_skips():
    data = position_data((8, 8, 8))
    request = request_at((0,) * 3, RAW=(8, 8, 8))
    for batch in batches(array_source(RAW, data) + gp.SimpleAugment(p=0.0), request, range(8)):
        np.testing.assert_array_equal(batch[RAW].data, data)


def test_p_half_skips_some():
    data = position_data((8, 8, 8))
    request = request_at((0,) * 3, RAW=(8, 8, 8))
    node = gp.SimpleAugment(mirror_probs=[1, 1, 1], p=0.5)
    results = [b[RAW].data for b in batches(array_source(RAW, data) + node, request, range(20))]
    unchanged = sum(np.array_equal(r, data) for r in results)
    assert 0 < unchanged < 20


def test_mirror_only_and_transpose_only_restrict_the_axes():
    data = position_data((8, 8, 8))
    request = request_at((0,) * 3, RAW=(8, 8, 8))
    node = gp.SimpleAugment(mirror_only=[0], transpose_only=[1, 2])
    allowed = {
        np.flip(data, axis=[0] * m).transpose(0, *t).tobytes(): (m, t)
        for m in (0, 1)
        for t in ((1, 2), (2, 1))
    }
    seen = set()
    for batch in batches(array_source(RAW, data) + node, request, range(24)):
        assert batch[RAW].data.tobytes() in allowed
        seen.add(allowed[batch[RAW].data.tobytes()])
    assert len(seen) == 4


def test_transpose_probs_list_zero_never_transposes():
    data = position_data((6, 6, 6))
    request = request_at((0,) * 3, RAW=(6, 6, 6))
    node = gp.SimpleAugment(mirror_probs=[0, 0, 0], transpose_probs=[0, 0, 0])
    for batch in batches(array_source(RAW, data) + node, request, range(6)):
        np.testing.assert_array_equal(batch[RAW].data, data)


def test_transposing_axes_of_different_voxel_size_is_a_request_error():
    source = array_source(RAW, position_data((4, 8, 8)), voxel_size=(10, 1, 1))
    request = gp.BatchRequest(random_seed=0)
    request.add(RAW, (40, 8, 8))
    with gp.build(source + gp.SimpleAugment(), scheduler="sync") as p:
        with pytest.raises(gp.BatchRequestError, match=r"SimpleAugment.*RAW.*\(10, 1, 1\)"):
            p.request_batch(request)
    with gp.build(source + gp.SimpleAugment(transpose_only=[1, 2]), scheduler="sync") as p:
        assert p.request_batch(request)[RAW].data.shape == (4, 8, 8)


class RecordRequests(gp.BatchFilter):
    """Passes batches through, remembering the ROIs it was asked for."""

    lazy = True

    def __init__(self):
        self.rois = []

    def prepare(self, request):
        self.rois.append({key: spec.roi for key, spec in request.array_specs.items()})


def test_upstream_request_is_exactly_the_transformed_rois():
    # Cost follows the batch: upstream is asked for the mirrored/transposed ROIs only, not for
    # their union with the downstream ROIs.
    data = position_data((30, 30, 30))
    source = (array_source(RAW, data), array_source(GT, data)) + gp.MergeProvider()
    record = RecordRequests()
    node = gp.SimpleAugment(mirror_probs=[1, 0, 0], transpose_probs={(1, 0, 2): 1.0})
    request = request_at((10, 10, 10), RAW=(4, 10, 6), GT=(2, 2, 2))
    request[GT].roi = request[GT].roi.shift(Coordinate(-1, 2, 0))
    (batch,) = batches(source + record + node, request, [0])
    # RAW [10:14, 10:20, 10:16] (the total ROI, centre (12, 15, 13)), GT [10:12, 16:18, 12:14].
    # Transposed about the centre: RAW [7:17, 13:17, 10:16], GT [13:15, 13:15, 12:14];
    # then mirrored in z within the new total [7:17]: GT z [13:15] -> [9:11].
    assert record.rois == [
        {RAW: Roi((7, 13, 10), (10, 4, 6)), GT: Roi((9, 13, 12), (2, 2, 2))}
    ]
    raw = gp.Array(batch[RAW].data, batch[RAW].spec).crop(request[GT].roi).data
    np.testing.assert_array_equal(raw, batch[GT].data)
    assert batch[GT].spec.roi == request[GT].roi


def test_identical_on_every_scheduler(scheduler):
    data = da.from_array(position_data((16, 16, 16)), chunks=8)
    source = (array_source(RAW, data), array_source(GT, data)) + gp.MergeProvider()
    request = request_at((2, 2, 2), RAW=(12, 12, 12), GT=(4, 6, 6))
    reference = [b[GT].data for b in batches(source + gp.SimpleAugment(), request, [1, 2])]
    got = [b[GT].data for b in batches(source + gp.SimpleAugment(), request, [1, 2], scheduler)]
    for a, b in zip(reference, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_graph_points_are_mirrored_and_transposed_with_the_data():
    raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
    rng = np.random.default_rng(0)
    locations = rng.integers(0, 12, size=(40, 3)) + 0.5
    graph = gp.Graph.from_arrays(np.arange(40), locations,
                                 spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), (12, 12, 12))))
    source = (array_source(raw, position_data((12, 12, 12))), gp.GraphSource(points, graph))
    for mirror, transpose in [([1, 0, 1], [0, 0, 0]), ([0, 1, 1], [0, 1, 1]), ([1, 1, 1],
                                                                               [1, 1, 1])]:
        pipeline = source + gp.MergeProvider() + gp.SimpleAugment(
            mirror_probs=mirror, transpose_probs=transpose)
        request = gp.BatchRequest(random_seed=4)
        request[raw] = gp.ArraySpec(roi=gp.Roi((2, 1, 3), (8, 8, 8)))
        request[points] = gp.GraphSpec(roi=gp.Roi((2, 1, 3), (8, 8, 8)))
        with gp.build(pipeline, scheduler="sync") as p:
            batch = p.request_batch(request)
        assert batch[points].num_vertices() > 5
        for node_id, location in zip(batch[points].ids, batch[points].locations, strict=True):
            voxel = tuple(int(v) for v in np.floor(location) - np.array((2, 1, 3)))
            z, y, x = np.floor(locations[node_id]).astype(int)
            assert batch[raw].data[voxel] == z * 10**8 + y * 10**4 + x
