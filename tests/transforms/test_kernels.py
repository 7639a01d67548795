"""The compiled warp engine against the reference (``scipy.ndimage.map_coordinates`` on the
coordinates of ``source_coordinates``): order 1 within 1e-5, order 0 exactly, any chunking."""

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from daskgp.transforms import (
    DeformTransform,
    ElasticTransform,
    Normalization,
    chunked_warp,
    control_lattice,
    control_point_counts,
    quaternion_rotation,
    section_shifts,
    source_box,
    source_coordinates,
    spline_coefficients,
    warp_block,
)
from daskgp.transforms._elastic import CoordinateSlabs
from daskgp.transforms._kernels import (
    bilinear,
    nearest,
    nearest_section,
    scale_shift,
    trilinear,
)

SHAPE = (9, 34, 30)


def reference(source, source_begin, transform, order, begin=None, shape=None):
    begin = (0,) * transform.dims if begin is None else begin
    shape = transform.grid_shape if shape is None else shape
    coordinates = source_coordinates(transform, begin, shape, relative_to=source_begin)
    return ndimage.map_coordinates(source, coordinates, output=source.dtype, order=order,
                                   mode="constant", cval=0, prefilter=False)


def elastic(kind, seed, shape=SHAPE):
    """Random transforms of each kind the engine treats differently."""
    rng = np.random.default_rng(seed)
    counts = control_point_counts(shape, (3, 10, 10))
    sigma = {"planar": (0.0, 2.0, 2.0), "jitter_z": (0.7, 2.0, 2.0)}.get(kind, (0.0, 0.0, 0.0))
    values = np.stack([rng.normal(scale=s, size=counts) for s in sigma])
    rotation = rng.uniform(0, 2 * np.pi)
    scale = 1.15 if kind == "scale" else 1.0
    shifts = None
    if kind == "misalign":
        shifts = section_shifts(rng.random(shape[0]), rng.integers(-3, 4, (shape[0], 2)),
                                0.3, 0.3)
    return ElasticTransform(shape, spline_coefficients(values), rotation, scale, shifts)


def rotated_3d(seed, voxel_size=(40.0, 4.0, 4.0), shape=SHAPE):
    """A uniform 3D rotation plus jitter in world units on an anisotropic grid."""
    rng = np.random.default_rng(seed)
    size = np.multiply(shape, voxel_size)
    origin, counts = control_lattice((0, 0, 0), size, (80.0, 40.0, 40.0))
    values = rng.normal(scale=6.0, size=(3, *counts))
    world = DeformTransform(size / 2, quaternion_rotation(3, (0, 1, 2), rng.normal(size=4)),
                            origin, (80.0, 40.0, 40.0), spline_coefficients(values))
    return world.on_grid((0.0, 0.0, 0.0), voxel_size, shape)


def source_for(transform, dtype, seed=1):
    begin, end = source_box(transform, (0,) * transform.dims, transform.grid_shape)
    rng = np.random.default_rng(seed)
    shape = np.subtract(end, begin)
    if np.dtype(dtype).kind == "f":
        return begin, rng.random(shape).astype(dtype)
    return begin, rng.integers(0, 250, shape).astype(dtype)


KINDS = ["planar", "rotation", "jitter_z", "scale", "misalign"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_within_1e5_of_map_coordinates_for_any_chunking(kind, seed):
    transform = elastic(kind, seed)
    # Section by section (OpenCV) unless the first axis is jittered.
    assert CoordinateSlabs(transform, (0, 0, 0), SHAPE).planar == (kind != "jitter_z")
    begin, data = source_for(transform, np.float32, seed)
    expected = reference(data, begin, transform, 1)
    results = []
    for chunk_shape, source_chunks in [((9, 34, 30), -1), ((4, 11, 7), (3, 13, 17)),
                                       ((1, 34, 16), (9, 8, 40))]:
        warped = chunked_warp(da.from_array(data, chunks=source_chunks), begin, transform,
                              (0, 0, 0), SHAPE, order=1, chunk_shape=chunk_shape)
        results.append(warped.compute(scheduler="sync"))
    np.testing.assert_allclose(results[0], expected, rtol=0, atol=1e-5)
    assert np.abs(expected).sum() > 100
    for result in results[1:]:
        assert np.array_equal(result, results[0])  # chunking invariant, bit for bit


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.uint64, np.int16, np.uint8, np.bool_])
def test_nearest_equals_map_coordinates_exactly(kind, dtype):
    transform = elastic(kind, 3)
    begin, data = source_for(transform, np.uint16, 4)
    data = data.astype(dtype)
    warped = chunked_warp(da.from_array(data, chunks=(4, 20, 20)), begin, transform,
                          (0, 0, 0), SHAPE, order=0, chunk_shape=(5, 11, 13))
    result = warped.compute(scheduler="sync")
    assert result.dtype == data.dtype
    np.testing.assert_array_equal(result, reference(data, begin, transform, 0))


@pytest.mark.parametrize("kind", ["planar", "jitter_z"])
def test_uint64_labels_above_2_53_are_exact(kind):
    transform = elastic(kind, 5)
    begin, small = source_for(transform, np.uint16, 6)
    labels = small.astype(np.uint64) * np.uint64(2**40) + np.uint64(2**60 + 1)
    warped = chunked_warp(da.from_array(labels, chunks=(5, 16, 16)), begin, transform,
                          (0, 0, 0), SHAPE, order=0, chunk_shape=(4, 17, 15))
    result = warped.compute(scheduler="sync")
    assert set(np.unique(result)) <= set(np.unique(labels))
    # The reference on values that float64 holds exactly, mapped the same way.
    expected = reference(small, begin, transform, 0).astype(np.uint64)
    np.testing.assert_array_equal(result, expected * np.uint64(2**40) + np.uint64(2**60 + 1))


@pytest.mark.parametrize("kind", ["planar", "misalign", "jitter_z", "rotation_3d"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_linear_interpolation_of_integers_equals_map_coordinates_exactly(kind, dtype):
    """Interpolatable integer arrays (a uint8 mask) round as map_coordinates does, section by
    section and (jittered sections, 3D rotations) with the trilinear integer kernel."""
    transform = rotated_3d(17) if kind == "rotation_3d" else elastic(kind, 17)
    begin, data = source_for(transform, np.uint8, 18)
    data = data.astype(dtype)
    if dtype == np.int16:
        data -= 120  # negative values too
    warped = chunked_warp(da.from_array(data, chunks=(4, 20, 20)), begin, transform,
                          (0, 0, 0), SHAPE, order=1, chunk_shape=(5, 11, 13))
    np.testing.assert_array_equal(warped.compute(scheduler="sync"),
                                  reference(data, begin, transform, 1))


@pytest.mark.parametrize("voxel_size", [(40.0, 4.0, 4.0), (8.0, 8.0, 8.0)])
def test_3d_rotations_on_anisotropic_grids(voxel_size):
    transform = rotated_3d(7, voxel_size)
    assert not CoordinateSlabs(transform, (0, 0, 0), SHAPE).planar
    begin, data = source_for(transform, np.float32, 8)
    linear = chunked_warp(da.from_array(data, chunks=(4, 16, 16)), begin, transform,
                          (0, 0, 0), SHAPE, order=1, chunk_shape=(4, 12, 16))
    np.testing.assert_allclose(linear.compute(scheduler="sync"),
                               reference(data, begin, transform, 1), rtol=0, atol=1e-5)
    labels = (data * 1000).astype(np.uint32)
    picked = chunked_warp(da.from_array(labels, chunks=(4, 16, 16)), begin, transform,
                          (0, 0, 0), SHAPE, order=0, chunk_shape=(5, 9, 30))
    np.testing.assert_array_equal(picked.compute(scheduler="sync"),
                                  reference(labels, begin, transform, 0))


def test_2d_transforms():
    rng = np.random.default_rng(2)
    shape = (40, 36)
    values = rng.normal(scale=2.0, size=(2, *control_point_counts(shape, (10, 10))))
    transform = ElasticTransform(shape, spline_coefficients(values), 0.8)
    begin, data = source_for(transform, np.float32, 3)
    for order, values in [(1, data), (0, (data * 100).astype(np.int64))]:
        warped = chunked_warp(da.from_array(values, chunks=(13, 11)), begin, transform,
                              (0, 0), shape, order=order, chunk_shape=(16, 20))
        np.testing.assert_allclose(warped.compute(scheduler="sync"),
                                   reference(values, begin, transform, order), rtol=0,
                                   atol=1e-5 if order else 0)


@pytest.mark.parametrize("kind", ["planar", "jitter_z"])
@pytest.mark.parametrize("order", [0, 1])
def test_fused_normalization_gives_the_bits_of_normalizing_first(kind, order):
    transform = elastic(kind, 9)
    begin, raw = source_for(transform, np.uint8, 10)
    normalization = Normalization(1.0 / 255, np.dtype(np.float32))
    normalized = raw.astype(np.float32) * (1.0 / 255)
    fused = chunked_warp(da.from_array(raw, chunks=(4, 20, 20)), begin, transform, (0, 0, 0),
                         SHAPE, order=order, chunk_shape=(5, 16, 16),
                         normalization=normalization).compute(scheduler="sync")
    plain = chunked_warp(da.from_array(normalized, chunks=(4, 20, 20)), begin, transform,
                         (0, 0, 0), SHAPE, order=order,
                         chunk_shape=(5, 16, 16)).compute(scheduler="sync")
    assert fused.dtype == np.float32
    assert np.array_equal(fused, plain)


def test_section_slabs_equal_the_whole_coordinate_array():
    for transform in (elastic("misalign", 11), rotated_3d(12)):
        whole = source_coordinates(transform, (1, 2, 3), (7, 30, 25), relative_to=(-2, 1, 0))
        slabs = CoordinateSlabs(transform, (1, 2, 3), (7, 30, 25), (-2, 1, 0))
        for i in range(7):
            assert np.array_equal(slabs.evaluate(i, 1)[:, 0], whole[:, i])
    planar = elastic("planar", 13)
    slabs = CoordinateSlabs(planar, (0, 0, 0), SHAPE, (0, 0, 0))
    whole = source_coordinates(planar, (0, 0, 0), SHAPE)
    out = np.empty((2, 4, *SHAPE[1:]), np.float32)
    sections = slabs.sections()
    for first in range(0, SHAPE[0], 4):
        count = min(4, SHAPE[0] - first)
        slabs.planar_slab(first, out[:, :count])
        assert np.array_equal(out[:, :count], whole[1:, first:first + count])
        for i in range(first, first + count):
            assert np.all(whole[0, i] == sections[i])


def test_kernels_at_and_beyond_the_edges():
    """0 outside ``[0, size - 1]``, as map_coordinates(mode="constant"); ties round up."""
    rng = np.random.default_rng(0)
    data = rng.random((4, 5, 6)).astype(np.float32)
    edge = [-1.0, -0.5, -1e-6, 0.0, 0.5, 1.5, 2.5, 3.0, 3.0 + 1e-6, 3.5, 4.0, 4.0 + 1e-6, 5.0]
    coordinates = np.stack(np.meshgrid(edge[:10], edge, edge, indexing="ij")).astype(np.float32)
    for order, kernel in ((0, nearest), (1, trilinear)):
        out = np.empty(coordinates.shape[1:], np.float32)
        kernel(data, coordinates, out)
        expected = ndimage.map_coordinates(data, coordinates, order=order, mode="constant",
                                           cval=0, prefilter=False, output=np.float32)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 if order else 0)
        assert (out == 0).sum() > out.size / 4
    image = (data[0] * 100).astype(np.uint64) + np.uint64(2**62)
    section = np.empty(coordinates.shape[2:], np.uint64)
    nearest_section(image, coordinates[1, 0], coordinates[2, 0], section)
    expected = ndimage.map_coordinates((data[0] * 100).astype(np.uint64), coordinates[1:, 0],
                                       order=0, mode="constant", cval=0, prefilter=False)
    inside = expected.astype(bool) | ((coordinates[1, 0] >= 0) & (coordinates[1, 0] <= 4)
                                      & (coordinates[2, 0] >= 0) & (coordinates[2, 0] <= 5))
    np.testing.assert_array_equal(section[inside], expected[inside] + np.uint64(2**62))
    assert np.all(section[~inside] == 0)
    inner = np.clip(coordinates[1:, 0], 0, [[[4]], [[5]]]).astype(np.float32)
    out = np.empty(inner.shape[1:], np.float32)
    bilinear(data[0], inner[0], inner[1], out)
    np.testing.assert_allclose(out, ndimage.map_coordinates(data[0], inner, order=1,
                                                            prefilter=False), atol=1e-6)


def test_same_bits_on_every_scheduler():
    transform = elastic("planar", 14)
    begin, data = source_for(transform, np.float32, 15)
    warped = chunked_warp(da.from_array(data, chunks=(5, 16, 16)), begin, transform,
                          (0, 0, 0), SHAPE, order=1, chunk_shape=(4, 17, 15))
    results = [dask.compute(warped, scheduler=s)[0] for s in ("sync", "threads", "processes")]
    for result in results[1:]:
        assert np.array_equal(result, results[0])


def test_warp_block_of_a_dims_4_transform_uses_the_reference_path():
    transform = ElasticTransform((3, 4, 5, 6), rotation=0.3)
    data = np.random.default_rng(0).random((5, 6, 9, 10)).astype(np.float32)
    begin, _ = source_box(transform, (0, 0, 0, 0), transform.grid_shape)
    out = warp_block(data, transform, (0, 0, 0, 0), (3, 4, 5, 6), begin, 1)
    np.testing.assert_array_equal(out, reference(data, begin, transform, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [True, False])
def test_scale_shift_gives_the_numpy_expressions_bits(dtype, clip):
    rng = np.random.default_rng(16)
    block = rng.random((7, 33, 20)).astype(dtype)
    mean, scale, shift = (dtype(v) for v in (block.mean(dtype=np.float64), 1.3, 0.08))
    expected = (block - mean) * scale
    expected += mean + shift
    if clip:
        np.clip(expected, 0, 1, out=expected)
    out = np.empty_like(block)
    assert scale_shift(block, mean, scale, shift, clip, out)
    assert np.array_equal(out, expected)
    assert clip == (out.max() <= 1)
    block[3, 4, 5] = 1.5
    assert scale_shift(block, mean, scale, shift, clip, out) is (not clip)


def test_equal_coefficients_share_their_spline_hull():
    first, second = rotated_3d(19), rotated_3d(19)
    other = rotated_3d(20)
    boxes = [source_box(t, (0, 0, 0), SHAPE) for t in (first, second, other)]
    assert boxes[0] == boxes[1]
    assert first._hulls[0] is second._hulls[0]
    assert first._hulls[0] is not other._hulls[0]
