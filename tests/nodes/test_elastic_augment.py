"""ElasticAugment: one seeded transform for all arrays, warped chunk-wise with computed halos."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

import daskgp as gp
from daskgp import Coordinate, Roi
from daskgp.nodes.elastic_augment import _Plan
from daskgp.transforms import source_box, source_coordinates
from tests.helpers import array_source, position_data

RAW, GT, COORDS = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("COORDS")
VOXEL = (2, 1, 1)
SHAPE = (16, 96, 96)  # source voxels


def raw_data(shape=SHAPE, seed=0):
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
    return smooth.astype(np.float32)


def coordinate_channels(shape=SHAPE):
    """Channel d holds each voxel's index along axis d: linear, so interpolation gives back
    the source coordinate a voxel samples (up to rounding)."""
    return np.stack(np.meshgrid(*(np.arange(s, dtype=np.float64) for s in shape),
                                indexing="ij"))


def sources(**arrays):
    nodes = tuple(array_source(gp.ArrayKey(name), data, voxel_size=VOXEL)
                  for name, data in arrays.items())
    return nodes[0] if len(nodes) == 1 else nodes + gp.MergeProvider()


def request_for(seed=1, **shapes):
    """Requests centred in the source, shapes in voxels."""
    request = gp.BatchRequest(random_seed=seed)
    center = Coordinate(SHAPE) * Coordinate(VOXEL) / 2
    for name, shape in shapes.items():
        world = Coordinate(shape) * Coordinate(VOXEL)
        request[gp.ArrayKey(name)] = gp.ArraySpec(roi=Roi(center - world / 2, world))
    return request


def crop(data, roi):
    """The voxels of ``roi`` (world units) in a source array starting at 0."""
    begin = roi.begin / Coordinate(VOXEL)
    shape = roi.shape / Coordinate(VOXEL)
    return data[(Ellipsis, *(slice(b, b + s) for b, s in zip(begin, shape, strict=True)))]


def run(pipeline, request, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        return p.request_batch(request)


def elastic(**kwargs):
    arguments = dict(control_point_spacing=[2, 10, 10], jitter_sigma=[0.5, 2.0, 2.0],
                     rotation_interval=[0, math.pi / 2], scale_interval=(0.9, 1.1),
                     prob_slip=0.1, prob_shift=0.1, max_misalign=2)
    arguments.update(kwargs)
    return gp.ElasticAugment(**arguments)


def test_identity_parameters_give_the_identity():
    raw, labels = raw_data(), position_data(SHAPE, dtype=np.uint64)
    pipeline = sources(RAW=raw, GT=labels) + gp.ElasticAugment([2, 10, 10], [0, 0, 0], [0, 0])
    # The request is the whole source: any growth of the upstream ROI would be an error.
    request = request_for(RAW=SHAPE, GT=(6, 20, 20))
    batch = run(pipeline, request)
    np.testing.assert_array_equal(batch[RAW].data, raw)
    np.testing.assert_array_equal(batch[GT].data, crop(labels, request[GT].roi))
    assert batch[RAW].spec.roi == request[RAW].roi and batch[GT].spec.roi == request[GT].roi


@pytest.mark.parametrize("chunk_shape", [(3, 7, 5), (1, 64, 64), (8, 16, 32), None])
def test_bit_identical_for_any_output_chunking(chunk_shape):
    raw, labels = raw_data(), position_data(SHAPE, dtype=np.uint64)
    request = request_for(seed=3, RAW=(8, 40, 40), GT=(4, 16, 16))
    batches = [run(sources(RAW=raw, GT=labels) + elastic(chunk_shape=c), request)
               for c in ((2, 9, 40), chunk_shape)]
    for key in (RAW, GT):
        assert np.array_equal(batches[0][key].data, batches[1][key].data)
    assert not np.array_equal(batches[0][RAW].data, crop(raw, request[RAW].roi))


def test_equals_a_whole_array_reference_warp():
    raw = raw_data()
    node = elastic(chunk_shape=(3, 11, 9))
    request = request_for(seed=4, RAW=(8, 40, 40))
    with gp.build(sources(RAW=raw) + node, scheduler="sync") as p:
        batch = p.request_batch(request)
        plan = _Plan(node, request)
    grid_shape = plan.transform.grid_shape
    box_begin, box_end = source_box(plan.transform, (0, 0, 0), grid_shape)
    grid_begin = plan.grid_roi.begin / Coordinate(VOXEL)
    upstream = raw[tuple(slice(g + b, g + e) for g, b, e in zip(grid_begin, box_begin, box_end,
                                                                strict=True))]
    coordinates = source_coordinates(plan.transform, (0, 0, 0), grid_shape,
                                     relative_to=box_begin)
    expected = ndimage.map_coordinates(upstream, coordinates, output=np.float32, order=1,
                                       mode="constant", cval=0)
    assert np.array_equal(batch[RAW].data, expected)


def test_labels_contain_only_source_values():
    labels = (position_data(SHAPE, dtype=np.uint64) % 97) + np.uint64(2**60)
    request = request_for(seed=5, GT=(10, 48, 48))
    batch = run(sources(GT=labels) + elastic(), request)
    values = np.unique(batch[GT].data)
    assert set(values) <= set(np.unique(labels))
    assert len(values) == 97


def test_rotation_by_a_right_angle_is_rot90():
    """Convention: for angle a, output (y, x) samples the source at the centre plus
    (cos a * dy + sin a * dx, -sin a * dy + cos a * dx); for a = pi/2 that is
    ``np.rot90(source, k=1, axes=(-2, -1))`` (gunpowder's ``augment.rotate``)."""
    raw, labels = raw_data(), position_data(SHAPE, dtype=np.uint64)
    node = gp.ElasticAugment([2, 10, 10], [0, 0, 0], [math.pi / 2, math.pi / 2])
    request = request_for(RAW=(6, 30, 30), GT=(6, 30, 30))
    batch = run(sources(RAW=raw, GT=labels) + node, request)
    expected_raw = np.rot90(crop(raw, request[RAW].roi), k=1, axes=(-2, -1))
    expected_labels = np.rot90(crop(labels, request[GT].roi), k=1, axes=(-2, -1))
    np.testing.assert_array_equal(batch[GT].data, expected_labels)
    interior = (slice(None), slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(batch[RAW].data[interior], expected_raw[interior], rtol=1e-5,
                               atol=1e-6)


def test_scale_is_about_the_centre():
    node = gp.ElasticAugment([2, 10, 10], [0, 0, 0], [0, 0], scale_interval=(1.5, 1.5))
    request = request_for(COORDS=(6, 20, 20))
    batch = run(sources(COORDS=coordinate_channels()) + node, request)
    begin = request[COORDS].roi.begin / Coordinate(VOXEL)
    center = np.array(begin) + (np.array([6, 20, 20]) - 1) / 2
    expected = center[:, None, None, None] + 1.5 * (
        coordinate_channels((6, 20, 20)) + np.array(begin)[:, None, None, None]
        - center[:, None, None, None]
    )
    np.testing.assert_allclose(batch[COORDS].data, expected, atol=1e-9)


def test_jitter_is_a_smooth_displacement_of_a_few_voxels():
    node = gp.ElasticAugment([2, 10, 10], [0, 2, 2], [0, 0])
    request = request_for(seed=6, COORDS=(8, 40, 40))
    batch = run(sources(COORDS=coordinate_channels()) + node, request)
    begin = np.array(request[COORDS].roi.begin / Coordinate(VOXEL))
    displacement = batch[COORDS].data - coordinate_channels((8, 40, 40)) - begin[:, None, None,
                                                                                None]
    np.testing.assert_allclose(displacement[0], 0, atol=1e-9)  # no jitter along z
    assert 1 < np.abs(displacement[1:]).max() < 10
    assert np.abs(np.diff(displacement[1:], axis=-1)).max() < 1  # smooth


def test_misalignment_moves_whole_sections_by_whole_voxels():
    node = gp.ElasticAugment([2, 10, 10], [0, 0, 0], [0, 0], prob_slip=0.5, prob_shift=0.3,
                             max_misalign=3)
    request = request_for(seed=7, COORDS=(10, 30, 30))
    batch = run(sources(COORDS=coordinate_channels()) + node, request)
    begin = np.array(request[COORDS].roi.begin / Coordinate(VOXEL))
    displacement = batch[COORDS].data - coordinate_channels((10, 30, 30)) - begin[:, None, None,
                                                                                   None]
    per_section = displacement[1:, :, :1, :1]
    np.testing.assert_allclose(displacement[1:], np.broadcast_to(per_section,
                                                                 displacement[1:].shape),
                               atol=1e-9)
    np.testing.assert_allclose(per_section, np.round(per_section), atol=1e-9)
    assert np.abs(per_section).max() > 0


def test_all_arrays_share_one_transform():
    raw = raw_data()
    request = request_for(seed=8, RAW=(10, 48, 48), GT=(4, 16, 16))
    batch = run(sources(RAW=raw, GT=raw.copy()) + elastic(chunk_shape=(3, 10, 10)), request)
    small = gp.Array(batch[RAW].data, batch[RAW].spec).crop(request[GT].roi).data
    assert np.array_equal(small, batch[GT].data)


def test_same_seed_same_batch_on_every_scheduler(scheduler):
    raw, labels = raw_data(), position_data(SHAPE, dtype=np.uint64)
    pipeline = sources(RAW=raw, GT=labels) + elastic(chunk_shape=(4, 20, 20))
    reference = run(pipeline, request_for(seed=9, RAW=(8, 40, 40), GT=(4, 16, 16)))
    batch = run(pipeline, request_for(seed=9, RAW=(8, 40, 40), GT=(4, 16, 16)), scheduler)
    other = run(pipeline, request_for(seed=10, RAW=(8, 40, 40), GT=(4, 16, 16)))
    for key in (RAW, GT):
        assert np.array_equal(batch[key].data, reference[key].data)
    assert not np.array_equal(other[RAW].data, reference[RAW].data)


def test_p_zero_skips():
    raw = raw_data()
    request = request_for(RAW=SHAPE)  # the whole source: no room to grow
    batch = run(sources(RAW=raw) + elastic(p=0.0), request)
    np.testing.assert_array_equal(batch[RAW].data, raw)


def test_channels_and_spatial_dims_two():
    """spatial_dims=2 warps each section of a 3D ROI the same way in y and x."""
    section = raw_data((1, 96, 96))[0]
    stacked = np.stack([np.broadcast_to(section, SHAPE), np.broadcast_to(2 * section, SHAPE)])
    node = gp.ElasticAugment([10, 10], [2, 2], [0, math.pi], spatial_dims=2)
    request = request_for(seed=11, RAW=(6, 30, 30))
    batch = run(sources(RAW=stacked) + node, request)
    data = batch[RAW].data
    assert data.shape == (2, 6, 30, 30)
    assert np.array_equal(data[:, :1].repeat(6, axis=1), data)
    np.testing.assert_allclose(data[1], 2 * data[0], rtol=1e-6)
    assert not np.allclose(data[0, 0], crop(stacked, request[RAW].roi)[0, 0])


def test_tasks_are_named_after_the_node():
    request = request_for(RAW=(6, 30, 30))
    with gp.build(sources(RAW=raw_data()) + elastic(chunk_shape=16), scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)
    keys = [k if isinstance(k, str) else k[0] for k in dict(lazy[RAW].data.__dask_graph__())]
    warps = [k for k in keys if k.startswith("elastic-augment-") and "block" not in k
             and "transform" not in k]
    assert len(warps) == 1 * 2 * 2


def test_grown_roi_outside_the_source_is_an_error_naming_node_key_and_rois():
    request = request_for(RAW=(8, 90, 90))
    node = gp.ElasticAugment([2, 10, 10], [0, 2, 2], [math.pi / 4, math.pi / 4])
    with pytest.raises(gp.BatchRequestError) as error:
        run(sources(RAW=raw_data()) + node, request)
    message = str(error.value)
    assert "ElasticAugment" in message and "RAW" in message
    assert str(request[RAW].roi) in message and "[0:32, 0:96, 0:96]" in message


def test_a_pad_upstream_fills_the_grown_roi():
    raw = raw_data()
    request = request_for(RAW=(8, 90, 90))
    node = gp.ElasticAugment([2, 10, 10], [0, 0, 0], [math.pi / 4, math.pi / 4])
    batch = run(sources(RAW=raw) + gp.Pad(RAW, None) + node, request)
    data = batch[RAW].data
    assert data[:, 0, 0].max() == 0  # corners rotate in from outside the source
    assert data[:, 45, 45].min() > 0


def test_different_voxel_sizes_are_an_error():
    pipeline = (array_source(RAW, raw_data(), voxel_size=(2, 1, 1)),
                array_source(GT, raw_data(), voxel_size=(2, 2, 2))) + gp.MergeProvider()
    request = gp.BatchRequest(random_seed=1)
    request[RAW] = gp.ArraySpec(roi=Roi((8, 16, 16), (8, 16, 16)))
    request[GT] = gp.ArraySpec(roi=Roi((8, 16, 16), (8, 16, 16)))
    with pytest.raises(gp.BatchRequestError, match="same voxel size"):
        run(pipeline + elastic(), request)


def test_a_batch_sized_output_is_one_task_per_array_reading_the_source_blocks_directly():
    import dask

    raw = raw_data()
    # The source in blocks smaller than the box: the warp reads its sections from them.
    source = array_source(RAW, da.from_array(raw, chunks=(4, 24, 24)), voxel_size=VOXEL)
    request = request_for(seed=5, RAW=(8, 40, 40))
    node = gp.ElasticAugment([2, 10, 10], [0, 2, 2], [0, math.pi / 2])
    with gp.build(source + node, scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)
        (optimized,) = dask.optimize(lazy[RAW].data)
        batch = lazy.compute(scheduler="sync")
    assert lazy[RAW].data.numblocks == (1, 1, 1)
    names = [str(key[0] if isinstance(key, tuple) else key)
             for key in dict(optimized.__dask_graph__())]
    # The warp task, the output block (an alias of it) and the transform, besides the
    # source's tasks.
    assert len([n for n in names if n.startswith("elastic-augment-")]) == 3
    chunked = run(array_source(RAW, raw, voxel_size=VOXEL)
                  + gp.ElasticAugment([2, 10, 10], [0, 2, 2], [0, math.pi / 2],
                                      chunk_shape=(3, 7, 5)), request)
    assert np.array_equal(batch[RAW].data, chunked[RAW].data)
