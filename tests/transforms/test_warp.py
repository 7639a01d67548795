"""``chunked_warp``: chunk-wise warp with computed halos, against a whole-array reference."""

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from daskgp.transforms import (
    ElasticTransform,
    chunked_warp,
    control_point_counts,
    sample,
    section_shifts,
    source_box,
    source_coordinates,
    spline_coefficients,
    tight_source_box,
)
from daskgp.transforms._warp import _sample_slices

SHAPE = (12, 40, 36)


def make_transform(shape=SHAPE, seed=0, rotation=0.6, scale=1.1):
    rng = np.random.default_rng(seed)
    counts = control_point_counts(shape, (3, 10, 10))
    values = np.stack([rng.normal(scale=s, size=counts) for s in (0.5, 2.0, 2.0)])
    shifts = section_shifts(rng.random(shape[0]), rng.integers(-2, 3, (shape[0], 2)), 0.2, 0.2)
    return ElasticTransform(shape, spline_coefficients(values), rotation, scale, shifts)


def reference_warp(source, source_begin, transform, order):
    """One map_coordinates over the whole coordinate field of the same pure functions."""
    coordinates = source_coordinates(transform, (0,) * transform.dims, transform.grid_shape,
                                     relative_to=source_begin)
    return ndimage.map_coordinates(source, coordinates, output=source.dtype, order=order,
                                   mode="constant", cval=0)


@pytest.fixture(scope="module")
def transform():
    return make_transform()


@pytest.fixture(scope="module")
def source(transform):
    begin, end = source_box(transform, (0, 0, 0), SHAPE)
    rng = np.random.default_rng(5)
    data = rng.random(np.subtract(end, begin)).astype(np.float32)
    return begin, data


@pytest.mark.parametrize("chunk_shape", [64, (5, 7, 9), (12, 1, 36), (3, 40, 13)])
@pytest.mark.parametrize("source_chunks", [-1, (4, 16, 11)])
def test_equals_whole_array_reference_for_any_chunking(transform, source, chunk_shape,
                                                       source_chunks):
    begin, data = source
    expected = reference_warp(data, begin, transform, order=1)
    warped = chunked_warp(da.from_array(data, chunks=source_chunks), begin, transform,
                          (0, 0, 0), SHAPE, order=1, chunk_shape=chunk_shape)
    result = warped.compute(scheduler="sync")
    assert result.dtype == np.float32
    assert np.array_equal(result, expected)  # bit-identical
    assert np.abs(result).sum() > 0


def test_a_sub_box_of_the_grid(transform, source):
    begin, data = source
    expected = reference_warp(data, begin, transform, order=1)[2:9, 5:30, 10:20]
    warped = chunked_warp(da.from_array(data, chunks=(5, 17, 9)), begin, transform,
                          (2, 5, 10), (7, 25, 10), order=1, chunk_shape=(4, 8, 6))
    assert np.array_equal(warped.compute(scheduler="sync"), expected)


def test_labels_take_only_source_values(transform, source):
    begin, data = source
    labels = (data * 50).astype(np.uint64) + np.uint64(2**60)  # beyond float64 precision
    warped = chunked_warp(da.from_array(labels, chunks=(6, 20, 20)), begin, transform,
                          (0, 0, 0), SHAPE, order=0, chunk_shape=(5, 11, 13))
    result = warped.compute(scheduler="sync")
    assert result.dtype == np.uint64
    assert set(np.unique(result)) <= set(np.unique(labels))
    small = (data * 50).astype(np.uint64)
    np.testing.assert_array_equal(result - np.uint64(2**60),
                                  reference_warp(small, begin, transform, order=0))


def test_channels_share_the_transform(transform, source):
    begin, data = source
    stacked = np.stack([data, 2 * data, 1 - data])[None]  # (1, 3, z, y, x)
    warped = chunked_warp(da.from_array(stacked, chunks=(1, 2, 6, 20, 20)), begin, transform,
                          (0, 0, 0), SHAPE, order=1, chunk_shape=16).compute(scheduler="sync")
    assert warped.shape == (1, 3, *SHAPE)
    for c, channel in enumerate([data, 2 * data, 1 - data]):
        assert np.array_equal(warped[0, c], reference_warp(channel, begin, transform, 1))


def test_sample_matches_map_coordinates_nearest_rounding():
    data = np.arange(30, dtype=np.int64).reshape(5, 6)
    coordinates = np.array([[0.0, 0.5, 1.5, 2.49, 3.5, 4.0, 2.5000001],
                            [0.5, 1.5, 2.5, 4.5, 5.0, 0.49, 3.5]])
    expected = ndimage.map_coordinates(data, coordinates, order=0, mode="constant")
    np.testing.assert_array_equal(sample(data, coordinates, 0), expected)


def test_one_task_per_chunk_named_after_the_caller(transform, source):
    begin, data = source
    warped = chunked_warp(da.from_array(data, chunks=-1), begin, transform, (0, 0, 0), SHAPE,
                          order=1, chunk_shape=(6, 20, 18), name="elastic-augment")
    keys = [str(k) for k in dict(warped.__dask_graph__())]
    assert warped.numblocks == (2, 2, 2)
    workers = [k for k in keys if k.startswith("elastic-augment-") and "block" not in k
               and "transform" not in k]
    assert len(workers) == 8


def test_each_chunk_depends_only_on_the_source_blocks_of_its_box(transform, source):
    begin, data = source
    chunks = (4, 8, 8)
    blocks = da.from_array(data, chunks=chunks, name="source")
    chunk_shape = (4, 10, 9)
    warped = chunked_warp(blocks, begin, transform, (0, 0, 0), SHAPE, order=1,
                          chunk_shape=chunk_shape, name="warp")
    graph = dict(warped.__dask_graph__())
    workers = sorted((k for k in graph if isinstance(k, str) and k.startswith("warp-")
                      and "block" not in k and "transform" not in k),
                     key=lambda k: int(k.rsplit("-", 1)[1]))  # numbered in C order of chunks
    starts = [range(0, n, c) for n, c in zip(SHAPE, chunk_shape, strict=True)]
    sizes = []
    for key, chunk_begin in zip(workers, _product(starts), strict=True):
        chunk_size = tuple(min(c, n - b) for c, n, b in zip(chunk_shape, SHAPE, chunk_begin,
                                                            strict=True))
        box_begin, box_end = source_box(transform, chunk_begin, chunk_size)
        local = np.subtract(box_begin, begin), np.subtract(box_end, begin)
        expected = {
            ("source", *index) for index in _product(
                range(lo // c, (hi - 1) // c + 1) for lo, hi, c in zip(*local, chunks,
                                                                       strict=True))
        }
        read = {k for k in dask.core.get_dependencies(graph, key) if k[0] == "source"}
        assert read == expected
        sizes.append(len(read))
    assert max(sizes) < blocks.npartitions / 3


def _product(ranges):
    import itertools

    return list(itertools.product(*ranges))


def test_source_too_small_is_an_error(transform, source):
    begin, data = source
    tight_begin, tight_end = tight_source_box(transform, (0, 0, 0), SHAPE)
    offset = np.subtract(tight_begin, begin)
    size = np.subtract(tight_end, tight_begin)
    exact = data[tuple(slice(o, o + n) for o, n in zip(offset, size, strict=True))]
    reference = reference_warp(data, begin, transform, order=1)
    warped = chunked_warp(da.from_array(exact, chunks=7), tight_begin, transform, (0, 0, 0),
                          SHAPE, order=1, chunk_shape=(5, 7, 9)).compute()
    np.testing.assert_array_equal(warped, reference)  # the exact box is enough
    with pytest.raises(ValueError, match="outside the source"):
        chunked_warp(da.from_array(exact[:, 1:]), (tight_begin[0], tight_begin[1] + 1,
                                                   tight_begin[2]), transform, (0, 0, 0),
                     SHAPE, order=1)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("z_offset", [0.0, 0.25])
def test_linear_sampling_by_slices_equals_3d_map_coordinates(dtype, z_offset):
    """Slice-wise 2D interpolation (used when z coordinates are whole per slice) gives the same
    bits as one 3D map_coordinates; fractional z falls back to 3D."""
    rng = np.random.default_rng(3)
    data = (rng.random((7, 30, 30)) * 200).astype(dtype)
    z, y, x = np.meshgrid(np.arange(5), np.arange(20), np.arange(20), indexing="ij")
    angle = 0.7
    coordinates = np.stack([
        z + 1 + z_offset,
        np.cos(angle) * (y - 10) - np.sin(angle) * (x - 10) + 14.5,
        np.sin(angle) * (y - 10) + np.cos(angle) * (x - 10) + 14.5,
    ]).astype(np.float32)
    coordinates[1, 2, 3, 4] = -3.0  # outside: constant 0
    expected = ndimage.map_coordinates(data, coordinates, output=data.dtype, order=1,
                                       mode="constant", cval=0, prefilter=False)
    got = sample(data, coordinates, 1)
    assert (_sample_slices(data, coordinates) is not None) == (z_offset == 0.0)
    assert got.dtype == data.dtype
    np.testing.assert_array_equal(got, expected)
    assert got[2, 3, 4] == 0
