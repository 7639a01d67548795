"""``DeformTransform`` and its voxel-grid views: world-unit rotation, scale and B-spline jitter."""

import math

import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from daskgp.transforms import (
    DeformTransform,
    chunked_warp,
    control_lattice,
    plane_rotation,
    quaternion_rotation,
    source_bounds,
    source_box,
    source_coordinates,
    spline_coefficients,
    world_displacement,
)


def voxel_centres(grid_begin, voxel_size, shape):
    """World centres of a grid's voxels, ``(dims, *shape)``."""
    index = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")).astype(float)
    expand = (-1,) + (1,) * len(shape)
    return (np.reshape(grid_begin, expand) + (index + 0.5) * np.reshape(voxel_size, expand))


def jittered(begin, end, spacing, sigma, seed=0, subsample=None):
    """A transform with a random rotation, scale 1.2 and jitter over ``[begin, end]``."""
    rng = np.random.default_rng(seed)
    dims = len(begin)
    margin = 0.0 if subsample is None else np.asarray(subsample, float)
    origin, counts = control_lattice(np.subtract(begin, margin), np.add(end, margin), spacing)
    values = np.stack([rng.normal(scale=s, size=counts) for s in sigma])
    if dims == 3:
        matrix = quaternion_rotation(dims, range(dims), rng.normal(size=4)) / 1.2
    else:
        matrix = plane_rotation(dims, (0, 1), rng.random() * 2 * math.pi) / 1.2
    return DeformTransform(
        (np.add(begin, end)) / 2, matrix, origin, spacing, spline_coefficients(values),
        None if subsample is None else np.asarray(begin, float) + 0.5,
        subsample,
    )


def test_rotation_matrices():
    rotation = plane_rotation(3, (0, 2), 0.3)
    assert np.allclose(rotation[[0, 0, 2, 2], [0, 2, 0, 2]],
                       [math.cos(0.3), math.sin(0.3), -math.sin(0.3), math.cos(0.3)])
    assert np.array_equal(rotation[1], [0, 1, 0])
    rng = np.random.default_rng(0)
    for axes in [(0, 1, 2), (1, 2, 3)]:
        matrix = quaternion_rotation(4, axes, rng.normal(size=4))
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(4), atol=1e-12)
        assert math.isclose(np.linalg.det(matrix), 1.0)
        fixed = next(a for a in range(4) if a not in axes)
        assert matrix[fixed, fixed] == 1 and np.count_nonzero(matrix[fixed]) == 1


def test_random_quaternions_give_uniformly_distributed_rotations():
    """Over uniform rotations, every matrix entry has mean 0 and variance 1/3, and a rotated
    vector is uniform on the sphere (each coordinate uniform in [-1, 1])."""
    rng = np.random.default_rng(1)
    matrices = np.stack([quaternion_rotation(3, (0, 1, 2), rng.normal(size=4))
                         for _ in range(4000)])
    assert np.abs(matrices.mean(axis=0)).max() < 0.05
    np.testing.assert_allclose((matrices**2).mean(axis=0), 1 / 3, atol=0.03)
    z = matrices[:, 0, 0]
    histogram, _ = np.histogram(z, bins=4, range=(-1, 1))
    np.testing.assert_allclose(histogram / len(z), 0.25, atol=0.03)


def test_identity_on_any_voxel_grid():
    t = DeformTransform((10.0, 10.0, 10.0))
    grid = t.on_grid((4, 6, 8), (2, 1, 3), (3, 4, 2))
    coordinates = source_coordinates(grid, (0, 0, 0), (3, 4, 2))
    index = np.stack(np.meshgrid(*(np.arange(s) for s in (3, 4, 2)), indexing="ij"))
    assert np.array_equal(coordinates, index)
    assert source_box(grid, (0, 0, 0), (3, 4, 2)) == ((0, 0, 0), (3, 4, 2))
    assert not world_displacement(t, (4, 6, 8), (2, 1, 3), (3, 4, 2)).any()


def test_grid_coordinates_sample_the_world_transform():
    """A grid view maps voxel centres through ``T`` and back to voxels of the same grid, and
    ``world_displacement`` is ``T(p) - p``: one transform for every voxel size."""
    begin, end = (0, 0, 0), (24, 30, 36)
    t = jittered(begin, end, (8, 10, 12), (1.5, 2.0, 2.5))
    for voxel_size in [(1, 1, 1), (2, 3, 4)]:
        shape = tuple(np.subtract(end, begin) // voxel_size)
        centres = voxel_centres(begin, voxel_size, shape)
        displacement = world_displacement(t, begin, voxel_size, shape)
        affine = np.einsum("de,e...->d...", t.matrix, centres - t.center[:, None, None, None])
        spline = displacement - (t.center[:, None, None, None] + affine - centres)
        assert 0.5 < np.abs(spline).max() < 10  # a jitter of a few world units
        grid = t.on_grid(begin, voxel_size, shape)
        coordinates = source_coordinates(grid, (0, 0, 0), shape)
        expected = (centres + displacement) / np.reshape(voxel_size, (3, 1, 1, 1)) - 0.5
        np.testing.assert_allclose(coordinates, expected, atol=1e-4)


def test_spline_passes_through_the_control_points():
    origin, counts = control_lattice((0, 0), (40, 40), (10, 10))
    values = np.random.default_rng(2).normal(size=(2, *counts))
    t = DeformTransform((20.0, 20.0), 0.5 * np.eye(2) + 0.5 * np.eye(2), origin, (10, 10),
                        spline_coefficients(values))
    # voxels of size 10 starting at -15: their centres are control points -10, 0, ..., 50
    displacement = world_displacement(t, origin - 5, (10, 10), counts)
    np.testing.assert_allclose(displacement, values, atol=1e-5)


def test_subsample_interpolates_linearly_between_lattice_points():
    begin, end = (0, 0), (40, 40)
    sub = jittered(begin, end, (10, 10), (2, 2), seed=3, subsample=(4, 4))
    exact = DeformTransform(sub.center, sub.matrix, sub.control_origin, sub.control_spacing,
                            sub.coefficients)
    shape = (40, 40)
    field = world_displacement(exact, begin, (1, 1), shape)
    subsampled = world_displacement(sub, begin, (1, 1), shape)
    # lattice points at voxel centres 0.5 + 4j: the spline itself
    np.testing.assert_allclose(subsampled[:, ::4, ::4], field[:, ::4, ::4], atol=1e-5)
    # linear in between, different from the spline
    along = subsampled[:, 0, 0:5]
    np.testing.assert_allclose(along[:, 1:4], along[:, :1] + np.arange(1, 4) / 4
                               * (along[:, 4:] - along[:, :1]), atol=1e-5)
    assert np.abs(subsampled - field).max() > 1e-3


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(*(st.integers(1, 12),) * 3),
    voxel_size=st.tuples(*(st.integers(1, 4),) * 3),
    spacing=st.tuples(*(st.integers(3, 20),) * 3),
    sigma=st.floats(0, 4),
    scale=st.floats(0.5, 2),
    subsample=st.sampled_from([None, 2, 5]),
    seed=st.integers(0, 10**6),
)
def test_source_box_holds_every_sampled_coordinate(shape, voxel_size, spacing, sigma, scale,
                                                   subsample, seed):
    rng = np.random.default_rng(seed)
    begin = np.array(voxel_size) * rng.integers(-5, 5, 3)
    end = begin + np.array(shape) * voxel_size
    margin = 0 if subsample is None else subsample * np.array(voxel_size, float)
    origin, counts = control_lattice(begin - margin, end + margin, spacing)
    values = rng.normal(scale=sigma, size=(3, *counts)) if sigma > 0 else np.zeros((3, *counts))
    t = DeformTransform(
        (begin + end) / 2 + rng.normal(size=3),
        quaternion_rotation(3, (0, 1, 2), rng.normal(size=4)) / scale, origin, spacing,
        spline_coefficients(values),
        None if subsample is None else begin + 0.5,
        None if subsample is None else subsample * np.array(voxel_size, float),
    )
    grid = t.on_grid(begin, voxel_size, shape)
    sub_begin = [int(rng.integers(0, s)) for s in shape]
    sub_shape = [int(rng.integers(1, s - b + 1)) for s, b in zip(shape, sub_begin, strict=True)]
    for box in [((0, 0, 0), shape), (sub_begin, sub_shape)]:
        box_begin, box_end = source_box(grid, *box)
        coordinates = source_coordinates(grid, *box, relative_to=box_begin).reshape(3, -1)
        assert (coordinates.min(axis=1) >= 0).all()
        assert (coordinates.max(axis=1) <= np.subtract(box_end, box_begin) - 1).all()
        low, high = source_bounds(grid, *box)
        assert (np.array(box_begin) <= low).all() and (high <= np.array(box_end) - 1).all()


def test_chunked_warp_of_a_grid_view_is_chunking_invariant_and_rot90():
    """A quarter turn in the plane of axes 0 and 2 (``plane_rotation``) is ``np.rot90`` over
    those axes, for a ROI square in that plane; and chunked warps of a view agree with one
    whole-array ``map_coordinates``."""
    data = np.random.default_rng(4).random((10, 6, 10)).astype(np.float32)
    t = DeformTransform((5.0, 3.0, 5.0), np.round(plane_rotation(3, (0, 2), math.pi / 2)))
    grid = t.on_grid((0, 0, 0), (1, 1, 1), data.shape)
    warped = chunked_warp(da.from_array(data, chunks=4), (0, 0, 0), grid, (0, 0, 0),
                          data.shape, order=1, chunk_shape=(3, 4, 5)).compute()
    np.testing.assert_array_equal(warped, np.rot90(data, k=1, axes=(0, 2)))

    t = jittered((0, 0, 0), (20, 24, 28), (6, 8, 8), (1, 2, 2), seed=5)
    grid = t.on_grid((0, 0, 0), (2, 2, 2), (10, 12, 14))
    box_begin, box_end = source_box(grid, (0, 0, 0), grid.grid_shape)
    source = np.random.default_rng(6).random(np.subtract(box_end, box_begin)).astype(np.float32)
    expected = ndimage.map_coordinates(
        source, source_coordinates(grid, (0, 0, 0), grid.grid_shape, relative_to=box_begin),
        output=np.float32, order=1, mode="constant", cval=0)
    for chunk_shape in [(3, 5, 7), (10, 12, 14)]:
        warped = chunked_warp(da.from_array(source, chunks=5), box_begin, grid, (0, 0, 0),
                              grid.grid_shape, order=1, chunk_shape=chunk_shape).compute()
        np.testing.assert_array_equal(warped, expected)
