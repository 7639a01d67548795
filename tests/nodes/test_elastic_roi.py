"""ElasticAugment asks upstream for no more than gunpowder does, for the same parameters.

gunpowder 1.5.0's upstream ROIs and the parameters it drew (jitter, rotation, per-section
shifts), for 40 seeds with and without misalignment, were stored by
tests/data/make_elastic_roi_fixtures.py. daskgp's transform is built from the same
parameters, and its upstream ROI computed the way ``ElasticAugment.prepare`` does.
"""

import json
import pathlib

import numpy as np
import pytest

import daskgp as gp
from daskgp.transforms import (
    ElasticTransform,
    source_box,
    spline_coefficients,
    tight_source_box,
)

FIXTURES = json.loads((pathlib.Path(__file__).parents[1] / "data" /
                       "elastic_roi_fixtures.json").read_text())
VOXEL_SIZE = np.array(FIXTURES["voxel_size"])
REQUESTS = FIXTURES["requests"]
GRID = tuple(REQUESTS["RAW"])  # RAW is the largest request: the total ROI, at the origin


def transform_for(entry):
    values = np.zeros((3, *np.shape(entry["jitter"][0])))
    values[1], values[2] = entry["jitter"]  # jitter_sigma (0, 2, 2): axes 1 and 2 draw
    shifts = np.array(entry["shifts"]) if "shifts" in entry else None
    return ElasticTransform(GRID, spline_coefficients(values), entry["rotation"], 1.0, shifts)


def world_roi(box):
    begin, end = (np.array(v) for v in box)
    return gp.Roi(tuple(begin * VOXEL_SIZE), tuple((end - begin) * VOXEL_SIZE))


@pytest.mark.parametrize("config", sorted(FIXTURES["seeds"]))
def test_upstream_roi_is_never_larger_than_gunpowders(config):
    seeds = FIXTURES["seeds"][config]
    assert len(seeds) == 40
    same = 0
    for seed, entry in seeds.items():
        transform = transform_for(entry)
        for key, shape in REQUESTS.items():
            begin = tuple((np.array(GRID) - shape) // 2)
            ours = world_roi(tight_source_box(transform, begin, tuple(shape)))
            theirs = gp.Roi(*entry["rois"][key])
            assert theirs.contains(ours), f"seed {seed}, {key}: {ours} is not inside {theirs}"
            same += ours == theirs
            # The cheap bound (used per chunk) stays a bound: never inside the exact box.
            assert world_roi(source_box(transform, begin, tuple(shape))).contains(ours)
    # Same parameters, same field: the exact boxes agree with gunpowder's.
    assert same == 2 * len(seeds)


def test_misalignment_counts_each_sections_own_shift():
    entry = next(e for e in FIXTURES["seeds"]["misaligned"].values()
                 if np.ptp(np.array(e["shifts"])[:, 1:], axis=0).max() >= 8)
    transform = transform_for(entry)
    loose = world_roi(source_box(transform, (0, 0, 0), GRID))
    exact = world_roi(tight_source_box(transform, (0, 0, 0), GRID))
    assert loose.contains(exact) and exact.shape[1] * exact.shape[2] < loose.shape[1] * \
        loose.shape[2]


def test_elastic_augment_requests_the_exact_box():
    raw = gp.ArrayKey("RAW")
    source = gp.ArraySource(raw, gp.Array(np.zeros((40, 300, 300), np.float32),
                                          gp.ArraySpec(roi=gp.Roi((-800, -600, -600),
                                                                  (1600, 1200, 1200)),
                                                       voxel_size=(40, 4, 4))))
    node = gp.ElasticAugment((4, 40, 40), (0, 2, 2), (0, np.pi / 2), prob_slip=0.1,
                             prob_shift=0.1, max_misalign=10)
    request = gp.BatchRequest(random_seed=3)
    request[raw] = gp.Roi((-480, -240, -240), (960, 480, 480))
    with gp.build(source + node, scheduler="sync") as p:
        upstream = node.prepare(request.copy())[raw].roi
        plan = node._plan(request)
        grid_begin, grid_shape = plan.grid_box(request[raw].roi)
        box = tight_source_box(plan.transform, grid_begin, grid_shape)
        assert upstream == world_roi(box).shift(plan.grid_roi.begin)
        assert p.request_batch(request)[raw].data.shape == (24, 120, 120)
