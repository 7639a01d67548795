"""RandomLocation: shifts on the lcm grid, data equal to a direct read, seeded draws, min_masked."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GT")
MASK = gp.ArrayKey("MASK")
SHIFT = gp.ArrayKey("SHIFT")


class CountingArray:
    """A numpy-like array that records the size of every read and refuses whole-array reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads: list[int] = []

    def __getitem__(self, index):
        values = self.data[index]
        if values.size == self.data.size:
            raise AssertionError("the whole mask was read")
        if values.size:
            self.reads.append(values.size)
        return values


class EvenXShift(gp.RandomLocation):
    """Accepts only locations whose x begin is a multiple of 20."""

    def accepts(self, request):
        return request[RAW].roi.begin[2] % 20 == 0


def _request(seed=None, **rois):
    request = gp.BatchRequest(random_seed=seed)
    for name, roi in rois.items():
        request[gp.ArrayKey(name.upper())] = gp.ArraySpec(roi=roi)
    request[SHIFT] = gp.ArraySpec(nonspatial=True)
    return request


def _mask_pipeline(min_masked, max_attempts=100, mask_data=None):
    """RAW (position data) and MASK (1 where x in [40, 60)), both (4, 4, 100), voxel size 1."""
    raw = position_data((4, 4, 100))
    if mask_data is None:
        mask_data = np.zeros((4, 4, 100), np.uint8)
        mask_data[:, :, 40:60] = 1
    sources = (array_source(RAW, raw), array_source(MASK, mask_data))
    return sources + gp.MergeProvider() + gp.RandomLocation(
        min_masked=min_masked, mask=MASK, random_shift_key=SHIFT, max_attempts=max_attempts
    )


def test_data_equals_direct_read_at_reported_shift():
    offset = (10, -20, 30)
    pipeline = array_source(RAW, position_data((30, 40, 50)), offset=offset) + gp.RandomLocation(
        random_shift_key=SHIFT
    )
    roi = gp.Roi((0, 0, 0), (5, 6, 7))
    with gp.build(pipeline, scheduler="sync") as p:
        assert p.spec[RAW].roi.unbounded
        assert p.spec[SHIFT].nonspatial and p.spec[SHIFT].dtype == np.int64
        for seed in range(10):
            batch = p.request_batch(_request(seed, raw=roi))
            shift = gp.Coordinate(batch[SHIFT].data)
            assert batch[SHIFT].data.dtype == np.int64
            assert batch[RAW].spec.roi == roi
            begin = roi.begin + shift - gp.Coordinate(offset)
            np.testing.assert_array_equal(batch[RAW].data, position_data(roi.shape, begin))


def test_shifts_lie_on_the_lcm_grid_and_cover_the_valid_range():
    # RAW at voxel size 2 and GT at 3: shifts must be multiples of 6.
    offset = (6, 0, -12)
    raw = array_source(RAW, position_data((30, 30, 30)), voxel_size=(2, 2, 2), offset=offset)
    gt = array_source(GT, position_data((20, 20, 20)), voxel_size=(3, 3, 3), offset=offset)
    pipeline = (raw, gt) + gp.MergeProvider() + gp.RandomLocation(random_shift_key=SHIFT)
    raw_roi, gt_roi = gp.Roi((0, 0, 0), (12, 12, 12)), gp.Roi((0, 0, 0), (6, 6, 6))
    seen: list[set] = [set(), set(), set()]
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(100):
            batch = p.request_batch(_request(seed, raw=raw_roi, gt=gt_roi))
            shift = gp.Coordinate(batch[SHIFT].data)
            assert shift.is_multiple_of(gp.Coordinate(6, 6, 6))
            begin = shift - gp.Coordinate(offset)
            np.testing.assert_array_equal(
                batch[RAW].data, position_data((6, 6, 6), begin / gp.Coordinate(2, 2, 2)))
            np.testing.assert_array_equal(
                batch[GT].data, position_data((2, 2, 2), begin / gp.Coordinate(3, 3, 3)))
            for d in range(3):
                seen[d].add(shift[d])
    # RAW limits the shift to [offset, offset + 60 - 12] in every dimension.
    for d in range(3):
        assert seen[d] == set(range(offset[d], offset[d] + 60 - 12 + 1, 6))


def test_same_seed_same_shift_different_seeds_differ():
    roi = gp.Roi((0, 0, 0), (4, 4, 4))

    def shift(seed):
        pipeline = array_source(RAW, position_data((20, 20, 20))) + gp.RandomLocation(
            random_shift_key=SHIFT)
        with gp.build(pipeline, scheduler="sync") as p:
            return tuple(p.request_batch(_request(seed, raw=roi))[SHIFT].data)

    assert shift(5) == shift(5)
    assert len({shift(seed) for seed in range(8)}) > 4


def test_min_masked_accepts_only_crops_with_enough_mask():
    roi = gp.Roi((0, 0, 0), (4, 4, 20))
    with gp.build(_mask_pipeline(min_masked=0.5), scheduler="sync") as p:
        begins = set()
        for seed in range(20):
            batch = p.request_batch(_request(seed, raw=roi, mask=roi))
            shift = gp.Coordinate(batch[SHIFT].data)
            assert (batch[MASK].data > 0).mean() >= 0.5
            # At least 10 of the 20 voxels inside [40, 60): begin in [30, 50].
            assert 30 <= shift[2] <= 50 and shift[:2] == (0, 0)
            np.testing.assert_array_equal(
                batch[RAW].data, position_data(roi.shape, roi.begin + shift))
            begins.add(shift[2])
    assert len(begins) > 5


def test_min_masked_impossible_raises_a_clear_error():
    roi = gp.Roi((0, 0, 0), (4, 4, 30))  # 30 wide, but only 20 voxels are masked in
    with gp.build(_mask_pipeline(min_masked=1.0, max_attempts=10), scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError) as error:
            p.request_batch(_request(0, raw=roi, mask=roi))
    message = str(error.value)
    for part in ("RandomLocation", "MASK", "min_masked=1.0", "10 attempts", "best ratio",
                 str(roi)):
        assert part in message
    best = float(message.split("best ratio seen was ")[1].split()[0])
    assert 0 <= best <= 20 / 30 + 1e-4


def test_min_masked_never_reads_the_whole_mask():
    mask_data = np.zeros((4, 4, 400), np.uint8)
    mask_data[:, :, 100:140] = 1
    counting = CountingArray(mask_data)
    lazy_mask = da.from_array(counting, chunks=(4, 4, 10), name="counting-mask")
    raw = position_data((4, 4, 400))
    pipeline = (array_source(RAW, raw), array_source(MASK, lazy_mask)) + gp.MergeProvider()
    pipeline += gp.RandomLocation(min_masked=0.5, mask=MASK, random_shift_key=SHIFT)
    roi = gp.Roi((0, 0, 0), (4, 4, 20))
    with gp.build(pipeline, scheduler="sync") as p:
        assert counting.reads == []  # setup reads nothing
        for seed in range(3):
            counting.reads.clear()
            batch = p.request_batch(_request(seed, raw=roi, mask=roi))
            assert (batch[MASK].data > 0).mean() >= 0.5
            # Every peek and the final read touch at most the 3 chunks under a 20-wide ROI.
            assert counting.reads and max(counting.reads) <= 3 * 4 * 4 * 10


def test_accepts_hook_is_respected():
    pipeline = array_source(RAW, position_data((4, 4, 100))) + EvenXShift(random_shift_key=SHIFT)
    roi = gp.Roi((0, 0, 0), (4, 4, 10))
    with gp.build(pipeline, scheduler="sync") as p:
        shifts = {p.request_batch(_request(seed, raw=roi))[SHIFT].data[2] for seed in range(10)}
    assert shifts and all(s % 20 == 0 for s in shifts)


def test_p_zero_passes_the_request_unshifted_and_p_half_mixes():
    roi = gp.Roi((0, 0, 0), (4, 4, 10))
    source = array_source(RAW, position_data((4, 4, 100)))
    with gp.build(source + gp.RandomLocation(p=0, random_shift_key=SHIFT), scheduler="sync") as p:
        batch = p.request_batch(_request(1, raw=roi))
    assert tuple(batch[SHIFT].data) == (0, 0, 0)
    np.testing.assert_array_equal(batch[RAW].data, position_data(roi.shape))
    with gp.build(source + gp.RandomLocation(p=0.5, random_shift_key=SHIFT),
                  scheduler="sync") as p:
        moved = [p.request_batch(_request(s, raw=roi))[SHIFT].data[2] != 0 for s in range(40)]
    assert 5 < sum(moved) < 35


def test_request_that_fits_nowhere_names_key_and_rois():
    pipeline = array_source(RAW, position_data((10, 10, 10))) + gp.RandomLocation()
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (5, 5, 11)))
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError) as error:
            p.request_batch(request)
    for part in ("RandomLocation", "RAW", "[0:5, 0:5, 0:11]", "[0:10, 0:10, 0:10]"):
        assert part in str(error.value)


def test_unbounded_upstream_is_an_error():
    pipeline = (array_source(RAW, position_data((10, 10, 10))) + gp.Pad(RAW, None)
                + gp.RandomLocation())
    request = gp.BatchRequest(random_seed=0)
    request.add(RAW, (4, 4, 4))
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match="unbounded"):
            p.request_batch(request)


def test_identical_on_every_scheduler(scheduler):
    roi = gp.Roi((0, 0, 0), (4, 4, 20))

    def run(on):
        with gp.build(_mask_pipeline(min_masked=0.5), scheduler=on) as p:
            batch = p.request_batch(_request(11, raw=roi, mask=roi))
        return {key: array.data for key, array in batch.arrays.items()}

    expected, got = run("sync"), run(scheduler)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(got[key], expected[key])
