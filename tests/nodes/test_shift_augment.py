"""ShiftAugment: every section is the upstream data at its drawn shift, lazily, seeded."""

from __future__ import annotations

import json
import pathlib

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp import Roi
from daskgp.nodes.shift_augment import _Plan, section_shifts
from tests.data.shift_helper_cases import run_cases
from tests.helpers import array_source, position_data

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")


def decode(values: np.ndarray) -> np.ndarray:
    """Voxel indices (last axis: z, y, x) encoded by ``position_data``."""
    return np.stack([values // 10**8, (values // 10**4) % 10**4, values % 10**4], axis=-1)


def request_for(seed=0, **rois) -> gp.BatchRequest:
    """A request with ``rois`` (key name -> (offset, shape)) and ``seed``."""
    request = gp.BatchRequest(random_seed=seed)
    for name, (offset, shape) in rois.items():
        request[gp.ArrayKey(name)] = gp.ArraySpec(roi=Roi(offset, shape))
    return request


def observed_shifts(values: np.ndarray, roi: Roi, axis: int = 0) -> np.ndarray:
    """Per section along ``axis``: the one shift (voxels) that maps every output voxel of
    ``values`` (covering ``roi`` at voxel size 1) to the upstream voxel it shows."""
    grid = np.stack(
        np.meshgrid(*(np.arange(b, e) for b, e in zip(roi.begin, roi.end, strict=True)),
                    indexing="ij"),
        axis=-1,
    )
    shift = grid - decode(values)  # output position - upstream position
    shifts = []
    for section in np.moveaxis(shift, axis, 0):
        flat = section.reshape(-1, 3)
        assert (flat == flat[0]).all(), "a section is not shifted as a whole"
        shifts.append(flat[0])
    return np.array(shifts)


def run(pipeline, request, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        return p.request_batch(request)


@pytest.mark.parametrize("axis", [0, 2])
def test_each_section_is_the_upstream_data_at_its_drawn_shift(axis):
    data = position_data((40, 40, 40))
    node = gp.ShiftAugment(prob_slip=0.3, prob_shift=0.3, sigma=2, shift_axis=axis)
    roi = Roi((12, 12, 12), (16, 16, 16))
    seen = set()
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        for seed in range(6):
            request = request_for(seed, RAW=(roi.begin, roi.shape))
            out = p.request_batch(request)[RAW].data
            shifts = observed_shifts(out, roi, axis)
            assert (shifts[:, axis] == 0).all()
            np.testing.assert_array_equal(shifts, _Plan(node, request).shifts)
            seen.add(shifts.tobytes())
    assert len(seen) == 6


def test_slips_move_one_section_and_shifts_all_following():
    draws = np.array([0.9, 0.05, 0.9, 0.15, 0.9, 0.05])
    offsets = np.array([[0, 7, 7], [0, 1, -1], [0, 7, 7], [0, 2, 3], [0, 7, 7], [0, -4, 4]])
    np.testing.assert_array_equal(
        section_shifts(draws, offsets, prob_slip=0.1, prob_shift=0.1),
        [[0, 0, 0], [0, 1, -1], [0, 0, 0], [0, 2, 3], [0, 2, 3], [0, -2, 7]],
    )
    np.testing.assert_array_equal(section_shifts(draws, offsets, 1.0, 0.0), offsets)
    np.testing.assert_array_equal(section_shifts(draws, offsets, 0.0, 1.0),
                                  np.cumsum(offsets, axis=0))
    np.testing.assert_array_equal(section_shifts(draws, offsets, 0.0, 0.0), 0 * offsets)


def test_slip_offsets_are_normal_with_sigma_in_world_units():
    data = position_data((200, 40, 40))
    node = gp.ShiftAugment(prob_slip=1.0, sigma=(0, 2, 3))
    roi = Roi((0, 16, 16), (200, 8, 8))
    out = run(array_source(RAW, data) + node, request_for(7, RAW=(roi.begin, roi.shape)))
    shifts = observed_shifts(out[RAW].data, roi)
    assert (shifts[:, 0] == 0).all()
    assert abs(shifts[:, 1].std() - 2) < 0.4 and abs(shifts[:, 2].std() - 3) < 0.6
    assert abs(shifts[:, 1].mean()) < 0.5 and abs(shifts[:, 2].mean()) < 0.7


@pytest.mark.parametrize("prob_slip, prob_shift", [(1.0, 0.0), (0.0, 1.0)])
def test_shifts_accumulate_and_slips_do_not(prob_slip, prob_shift):
    data = position_data((60, 136, 8))
    node = gp.ShiftAugment(prob_slip, prob_shift, sigma=(0, 2, 0))
    roi = Roi((0, 64, 0), (60, 8, 8))
    out = run(array_source(RAW, data) + node, request_for(2, RAW=(roi.begin, roi.shape)))
    shifts = observed_shifts(out[RAW].data, roi)[:, 1]
    steps = np.diff(shifts)
    neighbours = np.corrcoef(shifts[:-1], shifts[1:])[0, 1]
    if prob_shift:  # a random walk: every step is one offset, neighbours alike
        assert 1.5 < steps.std() < 2.5 and neighbours > 0.8
    else:  # independent offsets around 0
        assert 1.5 < shifts.std() < 2.5 and abs(neighbours) < 0.35


@pytest.mark.parametrize("sigma", [0, 5])
def test_zero_probabilities_give_the_identity(sigma):
    data = position_data((10, 30, 30))
    request = request_for(1, RAW=((2, 8, 8), (6, 12, 12)))
    if sigma == 0:
        with pytest.raises(gp.PipelineSetupError, match=r"ShiftAugment.*sigma=0"):
            run(array_source(RAW, data) + gp.ShiftAugment(sigma=0), request)
        return
    out = run(array_source(RAW, data) + gp.ShiftAugment(sigma=sigma), request)[RAW].data
    np.testing.assert_array_equal(out, data[2:8, 8:20, 8:20])
    skipped = gp.ShiftAugment(prob_slip=1, sigma=sigma, p=0.0)
    out = run(array_source(RAW, data) + skipped, request)[RAW].data
    np.testing.assert_array_equal(out, data[2:8, 8:20, 8:20])


def test_same_seed_same_batch_and_other_seeds_differ():
    data = position_data((10, 40, 40))
    node = gp.ShiftAugment(prob_slip=0.5, prob_shift=0.2, sigma=3)
    pipeline = array_source(RAW, data) + node
    outs = {}
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in (1, 2, 1):
            request = request_for(seed, RAW=((0, 12, 12), (10, 16, 16)))
            outs.setdefault(seed, []).append(p.request_batch(request)[RAW].data)
    np.testing.assert_array_equal(outs[1][0], outs[1][1])
    assert not np.array_equal(outs[1][0], outs[2][0])


def test_arrays_at_different_voxel_sizes_stay_aligned():
    raw = position_data((16, 64, 64))
    gt = raw[::2, ::2, ::2]  # the same world positions, at voxel size 2
    source = (array_source(RAW, raw), array_source(GT, gt, voxel_size=(2, 2, 2)))
    pipeline = source + gp.MergeProvider() + gp.ShiftAugment(prob_slip=0.4, prob_shift=0.4,
                                                              sigma=4)
    seen = set()
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(5):
            request = request_for(seed, RAW=((2, 20, 20), (12, 24, 24)),
                                  GT=((4, 24, 24), (8, 16, 16)))
            batch = p.request_batch(request)
            raw_out = gp.Array(batch[RAW].data, batch[RAW].spec).crop(request[GT].roi).data
            np.testing.assert_array_equal(raw_out[::2, ::2, ::2], batch[GT].data)
            # sections are 2 thick (the least common voxel size) and move by multiples of 2
            shifts = observed_shifts(batch[RAW].data, request[RAW].roi)
            np.testing.assert_array_equal(shifts[0::2], shifts[1::2])
            assert (shifts % 2 == 0).all()
            seen.add(shifts.tobytes())
    assert len(seen) > 2


def test_rois_off_the_section_grid_are_an_error():
    raw = position_data((16, 64, 64))
    source = (array_source(RAW, raw), array_source(GT, raw[::2, ::2, ::2], voxel_size=(2, 2, 2)))
    pipeline = source + gp.MergeProvider() + gp.ShiftAugment(prob_slip=0.5, sigma=4)
    request = request_for(1, RAW=((1, 20, 20), (12, 24, 24)), GT=((4, 24, 24), (8, 16, 16)))
    message = r"ShiftAugment: GT's ROI \[4:12.*total ROI \[1:13"
    with pytest.raises(gp.BatchRequestError, match=message):
        run(pipeline, request)


def test_channels_move_together():
    data = position_data((10, 40, 40))
    stacked = np.stack([data, data + 7])
    node = gp.ShiftAugment(prob_slip=0.6, sigma=3)
    source = array_source(RAW, stacked)
    roi = Roi((0, 12, 12), (10, 16, 16))
    out = run(source + node, request_for(4, RAW=(roi.begin, roi.shape)))[RAW].data
    assert out.shape == (2, 10, 16, 16)
    np.testing.assert_array_equal(out[1], out[0] + 7)
    assert observed_shifts(out[0], roi)[:, 1:].any()


def test_upstream_roi_outside_the_source_is_an_error_naming_the_rois():
    data = position_data((10, 20, 20))
    node = gp.ShiftAugment(prob_slip=1.0, sigma=3)
    request = request_for(1, RAW=((0, 0, 0), (10, 20, 20)))
    with pytest.raises(gp.BatchRequestError,
                       match=r"ShiftAugment: RAW's requested ROI \[0:10, 0:20, 0:20\].*Pad"):
        run(array_source(RAW, data) + node, request)


@pytest.mark.parametrize("kwargs", [
    {"sigma": 2, "shift_axis": 3},
    {"sigma": (1, 2, 2)},
    {"sigma": (0, 2)},
    {"sigma": 2, "prob_slip": 0.7, "prob_shift": 0.7},
])
def test_bad_parameters_are_setup_errors(kwargs):
    source = array_source(RAW, position_data((4, 4, 4)))
    with pytest.raises(gp.PipelineSetupError, match="ShiftAugment"):
        with gp.build(source + gp.ShiftAugment(**kwargs)):
            pass


def _never_computed(block):
    raise AssertionError("ShiftAugment computed data while building the graph")


def test_graph_is_lazy_slicing():
    data = da.map_blocks(_never_computed, da.zeros((10, 40, 40), chunks=(5, 20, 20)),
                         dtype=np.float64)
    node = gp.ShiftAugment(prob_slip=0.5, sigma=3)
    with gp.build(array_source(RAW, data) + node) as p:
        lazy = p.request_lazy_batch(request_for(3, RAW=((0, 12, 12), (10, 16, 16))))[RAW].data
    assert isinstance(lazy, da.Array) and lazy.shape == (10, 16, 16)
    prefixes = {str(k[0] if isinstance(k, tuple) else k).rsplit("-", 1)[0]
                for k in lazy.__dask_graph__()}
    # slices, and the rechunks that concatenate needs to line their chunks up: no compute
    assert prefixes <= {"getitem", "concatenate", "rechunk-split", "rechunk-merge",
                        "zeros_like", "_never_computed"}, prefixes


def test_identical_on_every_scheduler(scheduler):
    data = da.from_array(position_data((10, 40, 40)), chunks=(4, 20, 20))
    pipeline = array_source(RAW, data) + gp.ShiftAugment(prob_slip=0.4, prob_shift=0.3, sigma=3)
    request = request_for(9, RAW=((0, 12, 12), (10, 16, 16)))
    reference = run(pipeline, request)[RAW].data
    np.testing.assert_array_equal(run(pipeline, request, scheduler)[RAW].data, reference)
    assert observed_shifts(reference, Roi((0, 12, 12), (10, 16, 16)))[:, 1:].any()


def test_graph_grows_linearly_with_the_number_of_shifted_sections():
    # Pieces cut at many different offsets must not be split at each other's chunk
    # boundaries (that graph grows with the square of the number of shifts).
    data = da.from_array(position_data((40, 64, 64)), chunks=(8, 16, 16))
    sizes = {}
    for prob_slip in (0.0, 1.0):
        node = gp.ShiftAugment(prob_slip=prob_slip, sigma=4)
        with gp.build(array_source(RAW, data) + node) as p:
            request = request_for(1, RAW=((0, 16, 16), (40, 32, 32)))
            lazy = p.request_lazy_batch(request)[RAW].data
        sizes[prob_slip] = len(lazy.__dask_graph__())
    assert sizes[1.0] - sizes[0.0] < 5 * 40, sizes  # about 4 tasks per section


def test_graph_nodes_move_with_their_sections():
    raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
    rng = np.random.default_rng(0)
    locations = np.stack([np.arange(10) + 0.5, rng.uniform(8, 32, 10), rng.uniform(8, 32, 10)],
                         axis=1)
    graph = gp.Graph.from_arrays(np.arange(10), locations,
                                 spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), (10, 40, 40))))
    source = (array_source(raw, position_data((10, 40, 40))), gp.GraphSource(points, graph))
    pipeline = source + gp.MergeProvider() + gp.ShiftAugment(prob_slip=0.5, prob_shift=0.3,
                                                             sigma=3, shift_axis=0)
    request = gp.BatchRequest(random_seed=2)
    request[raw] = gp.ArraySpec(roi=gp.Roi((0, 8, 8), (10, 24, 24)))
    request[points] = gp.GraphSpec(roi=gp.Roi((0, 8, 8), (10, 24, 24)))
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_batch(request)
    moved = 0
    for node_id, location in zip(batch[points].ids, batch[points].locations, strict=True):
        voxel = tuple(int(v) for v in np.floor(location) - np.array((0, 8, 8)))
        # The raw value under the moved node encodes the node's original position.
        z, y, x = np.floor(locations[node_id]).astype(int)
        assert batch[raw].data[voxel] == z * 10**8 + y * 10**4 + x
        moved += not np.allclose(location, locations[node_id])
    assert moved > 0 and batch[points].num_vertices() >= 5
def test_public_helpers_give_gunpowders_results():
    """gunpowder users call ShiftAugment's helpers directly; fixtures by
    tests/data/make_shift_helper_fixtures.py from gunpowder 1.5.0."""
    fixtures = json.loads((pathlib.Path(__file__).parents[1] / "data" /
                           "shift_helper_fixtures.json").read_text())
    ours = run_cases(gp)
    assert sorted(ours) == sorted(fixtures)
    for name, expected in fixtures.items():
        assert ours[name] == expected, name
