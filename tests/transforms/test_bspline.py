"""The separable cubic spline: gunpowder's interpolation of jittered control points."""

import numpy as np
import pytest
from scipy import ndimage

from daskgp.transforms import (
    AxisSampling,
    contract,
    control_point_counts,
    mirror_index,
    spline_coefficients,
)
from daskgp.transforms._bspline import SplineHull, _subdivide, _subdivide_reference


def full_field(values, shape, subsample=1, dtype=np.float64):
    coefficients = spline_coefficients(values[None])[0]
    taps = [
        AxisSampling(s, n, subsample).taps(np.arange(s))
        for s, n in zip(shape, values.shape, strict=True)
    ]
    return contract(coefficients, taps, dtype)


def test_control_point_counts_follow_gunpowder():
    assert control_point_counts((84, 268, 268), (4, 40, 40)) == (21, 7, 7)
    # round(), and at least one control point per axis
    assert control_point_counts((10, 3, 50), (4, 40, 20)) == (2, 1, 2)


def test_mirror_index():
    assert mirror_index(np.arange(-3, 7), 4).tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert mirror_index(np.array([-2, 0, 5]), 1).tolist() == [0, 0, 0]


@pytest.mark.parametrize("counts", [(1,), (2,), (5,), (3, 4), (4, 1, 3)])
def test_spline_passes_through_control_points(counts):
    rng = np.random.default_rng(0)
    values = rng.normal(size=counts)
    coefficients = spline_coefficients(values[None])[0]
    shape = tuple(10 * (n - 1) + 1 if n > 1 else 7 for n in counts)
    knots = [np.arange(0, s, 10) if n > 1 else np.arange(s) for s, n in zip(shape, counts,
                                                                            strict=True)]
    taps = [AxisSampling(s, n).taps(k) for s, n, k in zip(shape, counts, knots, strict=True)]
    field = contract(coefficients, taps)
    expected = values
    for axis, n in enumerate(counts):
        if n == 1:  # one control point: a constant field along that axis
            expected = np.repeat(expected, shape[axis], axis=axis)
    np.testing.assert_allclose(field, expected, atol=1e-12)


@pytest.mark.parametrize("shape,counts", [((9, 23, 31), (3, 4, 2)), ((84, 67), (21, 2))])
def test_field_equals_scipy_zoom_as_in_gunpowder(shape, counts):
    """gunpowder upsamples the jitter with ``scipy.ndimage.zoom(order=3)``."""
    values = np.random.default_rng(1).normal(scale=2.0, size=counts)
    expected = ndimage.zoom(values, [s / n for s, n in zip(shape, counts, strict=True)],
                            order=3)
    assert expected.shape == shape
    np.testing.assert_allclose(full_field(values, shape), expected, atol=1e-12)
    np.testing.assert_allclose(full_field(values, shape, dtype=np.float32), expected, atol=1e-5)


def test_subsample_is_linear_between_spline_samples():
    """gunpowder's subsample: the spline at int(shape/subsample) points, linear in between."""
    values = np.random.default_rng(2).normal(size=(5,))
    length, subsample = 41, 4
    samples = int(length / subsample)
    positions = np.arange(samples) * (length - 1) / (samples - 1)
    at_samples = ndimage.map_coordinates(values, [positions * (len(values) - 1) / (length - 1)],
                                         order=3, mode="mirror")
    expected = np.interp(np.arange(length), positions, at_samples)
    np.testing.assert_allclose(full_field(values, (length,), subsample), expected, atol=1e-12)
    # the field at every 4th voxel is not the spline there: it really is subsampled
    assert not np.allclose(full_field(values, (length,)), expected, atol=1e-3)


@pytest.mark.parametrize("length,count,subsample", [(50, 6, 1), (50, 6, 3), (7, 1, 1),
                                                    (30, 12, 5), (12, 2, 20)])
def test_taps_are_a_partition_of_unity(length, count, subsample):
    index, weight = AxisSampling(length, count, subsample).taps(np.arange(length))
    assert (weight >= 0).all()
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=1e-12)
    assert index.min() >= 0 and index.max() < count


def test_contract_is_the_same_for_any_split_of_the_axes():
    values = np.random.default_rng(3).normal(size=(5, 4, 6))
    coefficients = spline_coefficients(values[None])[0].astype(np.float32)
    shape = (37, 29, 41)
    samplings = [AxisSampling(s, n) for s, n in zip(shape, values.shape, strict=True)]
    whole = contract(coefficients, [s.taps(np.arange(n)) for s, n in zip(samplings, shape,
                                                                         strict=True)],
                     np.float32)
    for begin, size in [((0, 0, 0), (5, 7, 3)), ((11, 13, 17), (13, 16, 24)),
                        ((36, 28, 40), (1, 1, 1))]:
        positions = [np.arange(b, b + s) for b, s in zip(begin, size, strict=True)]
        part = contract(coefficients, [s.taps(p) for s, p in zip(samplings, positions,
                                                                strict=True)], np.float32)
        window = tuple(slice(b, b + s) for b, s in zip(begin, size, strict=True))
        assert np.array_equal(part, whole[window])


def test_hull_bounds_the_spline_and_is_tighter_than_the_coefficients():
    rng = np.random.default_rng(4)
    values = rng.normal(scale=2.0, size=(9, 5, 5))
    shape = (40, 90, 90)
    coefficients = spline_coefficients(values[None])[0]
    samplings = [AxisSampling(s, n) for s, n in zip(shape, values.shape, strict=True)]
    field = contract(coefficients, [s.taps(np.arange(n)) for s, n in zip(samplings, shape,
                                                                         strict=True)])
    hull = SplineHull(coefficients)
    low, high = hull.bounds([s.knot_span(0, n - 1) for s, n in zip(samplings, shape,
                                                                   strict=True)])
    assert low <= field.min() and field.max() <= high
    assert high - low < 0.6 * (coefficients.max() - coefficients.min())
    for _ in range(20):
        begin = [int(rng.integers(0, n)) for n in shape]
        end = [int(rng.integers(b, n)) for b, n in zip(begin, shape, strict=True)]
        low, high = hull.bounds([s.knot_span(b, e) for s, b, e in zip(samplings, begin, end,
                                                                     strict=True)])
        part = field[tuple(slice(b, e + 1) for b, e in zip(begin, end, strict=True))]
        assert low <= part.min() and part.max() <= high


@pytest.mark.parametrize("shape", [(7,), (9, 6), (21, 7, 7), (6, 5, 8, 7)])
def test_compiled_subdivision_has_numpy_bits_along_every_axis(shape):
    coefficients = np.random.default_rng(len(shape)).normal(scale=3.0, size=shape)
    for axis in range(len(shape)):
        refined = _subdivide(coefficients, axis)
        expected = _subdivide_reference(coefficients, axis)
        assert refined.shape == expected.shape
        assert np.array_equal(refined, expected)
    # Non-contiguous input (a view) gives the same as its copy.
    view = coefficients[..., ::-1]
    assert np.array_equal(_subdivide(view, 0), _subdivide_reference(view, 0))
