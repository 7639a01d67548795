"""``ElasticTransform``: where output voxels sample the source, and the boxes that bound them."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daskgp.transforms import (
    ElasticTransform,
    _elastic,
    control_point_counts,
    section_shifts,
    source_bounds,
    source_box,
    source_coordinates,
    spline_coefficients,
    tight_source_box,
)


def jittered(shape, spacing, sigma, seed=0):
    counts = control_point_counts(shape, spacing)
    rng = np.random.default_rng(seed)
    values = np.stack([rng.normal(scale=s, size=counts) for s in sigma])
    return spline_coefficients(values)


def positions(begin, shape):
    return np.stack(np.meshgrid(*(np.arange(b, b + s) for b, s in zip(begin, shape,
                                                                      strict=True)),
                                indexing="ij")).astype(np.float64)


def test_identity():
    t = ElasticTransform((6, 7, 8), jittered((6, 7, 8), (2, 2, 2), (0, 0, 0)))
    coordinates = source_coordinates(t, (1, 2, 3), (4, 5, 5))
    assert np.array_equal(coordinates, positions((1, 2, 3), (4, 5, 5)))
    assert source_box(t, (1, 2, 3), (4, 5, 5)) == ((1, 2, 3), (5, 7, 8))


def test_rotation_direction_and_centre():
    """Rotation in the last two axes about the grid centre, gunpowder's ``augment.rotate``:
    source offset (y, x) = (cos * dy + sin * dx, -sin * dy + cos * dx)."""
    angle = 0.3
    t = ElasticTransform((3, 9, 11), rotation=angle)
    coordinates = source_coordinates(t, (0, 0, 0), (3, 9, 11))
    x = positions((0, 0, 0), (3, 9, 11))
    dy, dx = x[1] - 4.0, x[2] - 5.0
    np.testing.assert_allclose(coordinates[0], x[0], atol=1e-5)
    np.testing.assert_allclose(coordinates[1], 4.0 + math.cos(angle) * dy + math.sin(angle) * dx,
                               atol=1e-5)
    np.testing.assert_allclose(coordinates[2], 5.0 - math.sin(angle) * dy + math.cos(angle) * dx,
                               atol=1e-5)


def test_scale_about_the_centre():
    t = ElasticTransform((5, 5), scale=1.5)
    coordinates = source_coordinates(t, (0, 0), (5, 5))
    expected = 2.0 + 1.5 * (positions((0, 0), (5, 5)) - 2.0)
    np.testing.assert_allclose(coordinates, expected, atol=1e-6)


def test_section_shifts_slip_and_shift():
    draws = np.array([0.05, 0.5, 0.15, 0.5, 0.9])
    offsets = np.array([[1, -1], [7, 7], [2, 3], [7, 7], [7, 7]])
    shifts = section_shifts(draws, offsets, prob_slip=0.1, prob_shift=0.2)
    # section 0 slips alone; section 2 shifts itself and all after it
    assert shifts.tolist() == [[0, 1, -1], [0, 0, 0], [0, 2, 3], [0, 2, 3], [0, 2, 3]]
    t = ElasticTransform((5, 4, 4), section_shifts=shifts)
    coordinates = source_coordinates(t, (0, 0, 0), (5, 4, 4))
    expected = positions((0, 0, 0), (5, 4, 4)) + shifts.T[:, :, None, None]
    assert np.array_equal(coordinates, expected)


def test_bounds_are_computed_from_corners_not_from_a_field():
    """A huge grid costs nothing to bound: no full-resolution field is made."""
    shape = (2000, 20000, 20000)
    t = ElasticTransform(shape, jittered(shape, (400, 4000, 4000), (0, 2, 2)), rotation=0.7)
    low, high = source_bounds(t, (0, 0, 0), shape)
    assert low[0] == 0 and high[0] == shape[0] - 1
    assert low[1] < -3000 and high[1] > shape[1] + 3000


def transform_and_sub_box(shape, spacing, sigma, angle, scale, subsample, misalign, seed,
                          data):
    """A jittered transform of ``shape`` (with random slips and shifts if ``misalign``) and a
    sub-box ``(begin, size)`` of it drawn by hypothesis."""
    shifts = None
    if misalign:
        rng = np.random.default_rng(seed)
        shifts = section_shifts(rng.random(shape[0]), rng.integers(-3, 4, (shape[0], 2)),
                                0.3, 0.3)
    t = ElasticTransform(shape, jittered(shape, spacing, sigma, seed), angle, scale, shifts,
                         subsample)
    begin = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    size = tuple(data.draw(st.integers(1, s - b)) for s, b in zip(shape, begin, strict=True))
    return t, begin, size


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 30), st.integers(1, 30)),
    spacing=st.tuples(st.integers(1, 8), st.integers(2, 20), st.integers(2, 20)),
    sigma=st.tuples(st.floats(0, 2), st.floats(0, 4), st.floats(0, 4)),
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.5, 2.0),
    subsample=st.integers(1, 4),
    misalign=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_box_contains_every_sampled_coordinate(shape, spacing, sigma, angle, scale, subsample,
                                               misalign, seed, data):
    """Every source coordinate of a sub-box lies inside ``source_box`` of that sub-box, which
    lies inside the box of the whole grid; coordinates are exact shifts of each other."""
    t, begin, size = transform_and_sub_box(shape, spacing, sigma, angle, scale, subsample,
                                           misalign, seed, data)
    box_begin, box_end = source_box(t, begin, size)
    coordinates = source_coordinates(t, begin, size, relative_to=box_begin)
    for d in range(3):
        assert coordinates[d].min() >= 0
        assert coordinates[d].max() <= box_end[d] - box_begin[d] - 1
    whole_begin, whole_end = source_box(t, (0, 0, 0), shape)
    assert all(w <= b for w, b in zip(whole_begin, box_begin, strict=True))
    assert all(e <= w for w, e in zip(whole_end, box_end, strict=True))
    whole = source_coordinates(t, (0, 0, 0), shape, relative_to=whole_begin)
    window = tuple(slice(b, b + s) for b, s in zip(begin, size, strict=True))
    offset = np.subtract(box_begin, whole_begin).astype(np.float64)
    assert np.array_equal(coordinates + offset[:, None, None, None], whole[(slice(None),
                                                                            *window)])


@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 70), st.integers(1, 70)),
    spacing=st.tuples(st.integers(1, 8), st.integers(2, 20), st.integers(2, 20)),
    sigma=st.tuples(st.floats(0, 2), st.floats(0, 4), st.floats(0, 4)),
    angle=st.floats(-math.pi, math.pi),
    scale=st.sampled_from([1.0, 0.9, 1.3]),
    subsample=st.integers(1, 4),
    misalign=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_tight_box_from_tiles_is_that_of_every_voxel(shape, spacing, sigma, angle, scale,
                                                     subsample, misalign, seed, data):
    """``tight_source_box`` evaluates only the tiles that could widen it, yet gives the box of
    the floor and ceil of every voxel's coordinates (here tiling even the smallest boxes)."""
    t, begin, size = transform_and_sub_box(shape, spacing, sigma, angle, scale, subsample,
                                           misalign, seed, data)
    coordinates = source_coordinates(t, begin, size).reshape(3, -1)
    expected = (tuple(math.floor(v) for v in coordinates.min(axis=1)),
                tuple(math.ceil(v) + 1 for v in coordinates.max(axis=1)))
    tiled = _elastic._TILED_VOXELS
    try:
        _elastic._TILED_VOXELS = 0
        assert tight_source_box(t, begin, size) == expected
    finally:
        _elastic._TILED_VOXELS = tiled


def test_invalid_arguments():
    with pytest.raises(ValueError, match="scale must be positive"):
        ElasticTransform((4, 4), scale=0)
    with pytest.raises(ValueError, match="coefficients must have shape"):
        ElasticTransform((4, 4), np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="outside the transform's grid"):
        source_box(ElasticTransform((4, 4)), (2, 2), (3, 1))
