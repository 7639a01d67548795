"""DeformAugment: one world-unit transform for arrays at any voxel size, warped chunk-wise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import daskgp as gp
from daskgp import Coordinate, Roi
from daskgp.nodes.deform_augment import _Plan
from daskgp.transforms import source_box, source_coordinates
from tests.helpers import array_source, position_data

RAW, LABELS, COORDS, FIELD = (gp.ArrayKey(n) for n in ("RAW", "LABELS", "COORDS", "FIELD"))
EXTENT = (48, 48, 48)  # world units of every source
FINE, COARSE = (1, 1, 1), (2, 2, 2)


def raw_data(voxel_size=FINE, seed=0):
    shape = tuple(e // v for e, v in zip(EXTENT, voxel_size, strict=True))
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
    return smooth.astype(np.float32)


def world_centres(voxel_size=FINE):
    """Channel d holds the world position (axis d) of each voxel's centre: linear, so a warp
    of it gives back, at each output voxel, the world point its value came from."""
    axes = (np.arange(0, e, v) + v / 2 for e, v in zip(EXTENT, voxel_size, strict=True))
    return np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)


def labels_data(voxel_size=COARSE):
    """Labels encoding each voxel's index (``position_data``), above 2**53."""
    shape = tuple(e // v for e, v in zip(EXTENT, voxel_size, strict=True))
    return position_data(shape, dtype=np.uint64) + np.uint64(2**60)


def decode_label_centres(labels, voxel_size=COARSE):
    index = (labels - np.uint64(2**60)).astype(np.int64)
    zyx = np.stack([index // 10**8, index // 10**4 % 10**4, index % 10**4])
    return (zyx + 0.5) * np.reshape(voxel_size, (3, 1, 1, 1))


def sources(**arrays):
    """``name=(data, voxel_size)`` -> merged ``ArraySource``s over ``EXTENT``."""
    nodes = tuple(array_source(gp.ArrayKey(name), data, voxel_size=voxel_size)
                  for name, (data, voxel_size) in arrays.items())
    return nodes[0] if len(nodes) == 1 else nodes + gp.MergeProvider()


def request_for(seed=1, **sizes):
    """Requests centred in the sources, sizes in world units."""
    request = gp.BatchRequest(random_seed=seed)
    center = Coordinate(EXTENT) / 2
    for name, size in sizes.items():
        request[gp.ArrayKey(name)] = gp.ArraySpec(roi=Roi(center - Coordinate(size) / 2, size))
    return request


def crop(data, roi, voxel_size=FINE):
    begin = roi.begin / Coordinate(voxel_size)
    shape = roi.shape / Coordinate(voxel_size)
    return data[(Ellipsis, *(slice(b, b + s) for b, s in zip(begin, shape, strict=True)))]


def run(pipeline, request, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        return p.request_batch(request)


def deform(**kwargs):
    arguments = dict(control_point_spacing=(8, 8, 8), jitter_sigma=(1.5, 1.5, 1.5),
                     scale_interval=(0.9, 1.1))
    arguments.update(kwargs)
    return gp.DeformAugment(**arguments)


class QuarterTurn(gp.DeformAugment):
    """Rotates by exactly 90 degrees in the plane of ``rotation_axes``."""

    def _draw_rotation(self, request, dims):
        a, b = self.rotation_axes
        matrix = np.eye(dims)
        matrix[[a, a, b, b], [a, b, a, b]] = [0, 1, -1, 0]
        return matrix


def test_identity_parameters_give_the_identity():
    raw, labels = raw_data(), labels_data()
    pipeline = sources(RAW=(raw, FINE), LABELS=(labels, COARSE)) + gp.DeformAugment(
        (8, 8, 8), (0, 0, 0), rotate=False)
    # RAW is the whole source: any growth of the upstream ROI would be an error.
    request = request_for(RAW=EXTENT, LABELS=(16, 20, 24))
    batch = run(pipeline, request)
    np.testing.assert_array_equal(batch[RAW].data, raw)
    np.testing.assert_array_equal(batch[LABELS].data, crop(labels, request[LABELS].roi, COARSE))
    assert batch[RAW].spec.roi == request[RAW].roi
    assert batch[LABELS].spec.roi == request[LABELS].roi


@pytest.mark.parametrize("chunk_shape", [(3, 7, 5), (1, 20, 20), (16, 4, 9)])
def test_bit_identical_for_any_output_chunking(chunk_shape):
    arrays = dict(RAW=(raw_data(), FINE), LABELS=(labels_data(), COARSE))
    request = request_for(seed=3, RAW=(20, 20, 20), LABELS=(12, 16, 12))
    batches = [run(sources(**arrays) + deform(chunk_shape=c), request)
               for c in (64, chunk_shape)]
    for key in (RAW, LABELS):
        assert np.array_equal(batches[0][key].data, batches[1][key].data)
    assert not np.array_equal(batches[0][RAW].data, crop(arrays["RAW"][0], request[RAW].roi))


def test_equals_a_whole_array_reference_warp():
    raw = raw_data(COARSE)
    node = deform(chunk_shape=(3, 5, 4), subsample=2)
    request = request_for(seed=4, RAW=(20, 24, 16))
    with gp.build(sources(RAW=(raw, COARSE)) + node, scheduler="sync") as p:
        batch = p.request_batch(request)
        plan = _Plan(node, request)
    grid = plan.grid(RAW, request[RAW].roi)
    box_begin, box_end = source_box(grid, (0, 0, 0), grid.grid_shape)
    first = request[RAW].roi.begin / Coordinate(COARSE)
    upstream = raw[tuple(slice(f + b, f + e) for f, b, e in zip(first, box_begin, box_end,
                                                                strict=True))]
    coordinates = source_coordinates(grid, (0, 0, 0), grid.grid_shape, relative_to=box_begin)
    expected = ndimage.map_coordinates(upstream, coordinates, output=np.float32, order=1,
                                       mode="constant", cval=0)
    assert np.array_equal(batch[RAW].data, expected)


def test_labels_contain_only_source_values():
    labels = (position_data((24, 24, 24), dtype=np.uint64) % 97) + np.uint64(2**60)
    request = request_for(seed=5, LABELS=(24, 24, 24))
    batch = run(sources(LABELS=(labels, COARSE)) + deform(), request)
    values = np.unique(batch[LABELS].data)
    assert set(values) <= set(np.unique(labels))
    assert len(values) == 97


@pytest.mark.parametrize("axes", [(1, 2), (0, 2)])
def test_quarter_turn_is_rot90(axes):
    """For axes (a, b), output offsets (da, db) sample the source at (db, -da) from the centre:
    ``np.rot90(source, k=1, axes=(a, b))``, labels exactly, raw in the interior."""
    raw, labels = raw_data(), labels_data()
    node = QuarterTurn((8, 8, 8), (0, 0, 0), rotation_axes=axes)
    request = request_for(RAW=(20, 20, 20), LABELS=(20, 20, 20))
    batch = run(sources(RAW=(raw, FINE), LABELS=(labels, COARSE)) + node, request)
    expected_labels = np.rot90(crop(labels, request[LABELS].roi, COARSE), k=1, axes=axes)
    np.testing.assert_array_equal(batch[LABELS].data, expected_labels)
    expected_raw = np.rot90(crop(raw, request[RAW].roi), k=1, axes=axes)
    interior = (slice(1, -1),) * 3
    np.testing.assert_allclose(batch[RAW].data[interior], expected_raw[interior], rtol=1e-5)


def test_arrays_at_different_voxel_sizes_stay_aligned():
    """Raw at (1, 1, 1) says where each value came from (world), labels at (2, 2, 2) which
    voxel they came from: the label voxel's centre is the one nearest to where the raw voxels
    it covers came from."""
    node = deform(jitter_sigma=(2, 2, 2), chunk_shape=(5, 6, 7))
    request = request_for(seed=6, COORDS=(16, 16, 16), LABELS=(16, 16, 16))
    batch = run(sources(COORDS=(world_centres(), FINE), LABELS=(labels_data(), COARSE)) + node,
                request)
    came_from = batch[COORDS].data.astype(np.float64)
    # a coarse voxel's centre is the mean of the centres of the 8 fine voxels it covers
    came_from = came_from.reshape(3, 8, 2, 8, 2, 8, 2).mean(axis=(2, 4, 6))
    label_centres = decode_label_centres(batch[LABELS].data)
    error = label_centres - came_from
    assert np.abs(error).max() <= 1.05  # half a coarse voxel, plus the spline's curvature
    assert np.abs(error.reshape(3, -1).mean(axis=1)).max() < 0.15  # no offset
    identity = np.stack(np.meshgrid(*(np.arange(16, 32, 2) + 1.0,) * 3, indexing="ij"))
    assert np.abs(came_from - identity).max() > 2  # the batch was deformed


def test_transform_key_is_the_displacement_values_came_from():
    """The field at a voxel centre ``p`` (voxel size = control point spacing) is ``T(p) - p``,
    where the raw value at ``p`` came from."""
    node = deform(control_point_spacing=(5, 5, 5), transform_key=FIELD)
    request = gp.BatchRequest(random_seed=7)
    request[COORDS] = gp.ArraySpec(roi=Roi((15, 15, 15), (20, 20, 20)))
    request[FIELD] = gp.ArraySpec(roi=Roi((15, 15, 15), (20, 20, 20)))
    batch = run(sources(COORDS=(world_centres(), FINE)) + node, request)
    field = batch[FIELD].data
    assert field.shape == (3, 4, 4, 4) and field.dtype == np.float32
    assert batch[FIELD].spec.voxel_size == Coordinate(5, 5, 5)
    assert batch[FIELD].spec.roi == request[FIELD].roi
    # field voxel centres 17.5, 22.5, ... are the centres of voxels 2, 7, 12, 17 of COORDS
    came_from = batch[COORDS].data[:, 2::5, 2::5, 2::5]
    centres = np.stack(np.meshgrid(*(np.arange(15, 35, 5) + 2.5,) * 3, indexing="ij"))
    np.testing.assert_allclose(centres + field, came_from, atol=2e-4)
    assert np.abs(field).max() > 1


def test_transform_key_when_skipped():
    node = deform(control_point_spacing=(4, 4, 4), transform_key=FIELD, p=0.0)
    request = request_for(seed=8, RAW=(16, 16, 16), FIELD=(16, 16, 16))
    raw = raw_data()
    batch = run(sources(RAW=(raw, FINE)) + node, request)
    np.testing.assert_array_equal(batch[RAW].data, crop(raw, request[RAW].roi))
    assert batch[FIELD].data.shape == (3, 4, 4, 4) and not batch[FIELD].data.any()
    applied = run(sources(RAW=(raw, FINE)) + deform(control_point_spacing=4,
                                                     transform_key=FIELD), request)
    assert np.abs(applied[FIELD].data).max() > 0.5


def test_rotation_axes_and_scale():
    """Rotations in the plane of axes (1, 2) leave axis 0 alone; the scale divides offsets
    from the centre (> 1 zooms in)."""
    node = deform(jitter_sigma=0, rotation_axes=(1, 2), scale_interval=(2, 2))
    request = request_for(seed=9, COORDS=(16, 16, 16))
    batch = run(sources(COORDS=(world_centres(), FINE)) + node, request)
    came_from = batch[COORDS].data
    centres = np.stack(np.meshgrid(*(np.arange(16, 32) + 0.5,) * 3, indexing="ij"))
    np.testing.assert_allclose(came_from[0], 24 + (centres[0] - 24) / 2, atol=1e-5)
    radius = np.hypot(came_from[1] - 24, came_from[2] - 24)
    np.testing.assert_allclose(radius, np.hypot(centres[1] - 24, centres[2] - 24) / 2, atol=1e-4)
    assert np.abs(came_from[1] - (24 + (centres[1] - 24) / 2)).max() > 1  # rotated


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    size=st.tuples(*(st.integers(1, 6),) * 3),
    spacing=st.integers(3, 16),
    sigma=st.floats(0, 3),
    scale=st.floats(0.7, 1.5),
    subsample=st.sampled_from([1, 3]),
)
def test_upstream_roi_contains_every_sampled_coordinate(seed, size, spacing, sigma, scale,
                                                        subsample):
    node = gp.DeformAugment(spacing, sigma, scale_interval=(scale, scale), subsample=subsample)
    request = gp.BatchRequest(random_seed=seed)
    request[RAW] = gp.ArraySpec(roi=Roi((16, 16, 16), Coordinate(size) * 2))
    request[LABELS] = gp.ArraySpec(roi=Roi((18, 14, 20), Coordinate(size) * 2))
    pipeline = (sources(RAW=(raw_data(FINE), FINE), LABELS=(labels_data(), COARSE))
                + gp.Pad(RAW, None) + gp.Pad(LABELS, None) + node)  # any growth is fine
    with gp.build(pipeline, scheduler="sync"):
        plan = _Plan(node, request)
        upstream = node.prepare(request)
    for key, voxel_size in ((RAW, FINE), (LABELS, COARSE)):
        roi, upstream_roi = request[key].roi, upstream[key].roi
        assert upstream_roi.begin.is_multiple_of(Coordinate(voxel_size))  # on the voxel grid
        assert upstream_roi.shape.is_multiple_of(Coordinate(voxel_size))
        grid = plan.grid(key, roi)
        relative_to = (upstream_roi.begin - roi.begin) / Coordinate(voxel_size)
        coordinates = source_coordinates(grid, (0, 0, 0), grid.grid_shape,
                                         relative_to=relative_to).reshape(3, -1)
        upstream_shape = np.array(upstream_roi.shape / Coordinate(voxel_size))
        assert (coordinates.min(axis=1) >= 0).all()
        assert (coordinates.max(axis=1) <= upstream_shape - 1).all()


def test_same_seed_same_batch_on_every_scheduler(scheduler):
    pipeline = sources(RAW=(raw_data(), FINE), LABELS=(labels_data(), COARSE)) + deform(
        chunk_shape=(6, 10, 10), transform_key=FIELD)
    sizes = dict(RAW=(16, 20, 20), LABELS=(12, 12, 12), FIELD=(16, 16, 16))
    reference = run(pipeline, request_for(seed=9, **sizes))
    batch = run(pipeline, request_for(seed=9, **sizes), scheduler)
    other = run(pipeline, request_for(seed=10, **sizes))
    for key in (RAW, LABELS, FIELD):
        assert np.array_equal(batch[key].data, reference[key].data)
    assert not np.array_equal(other[RAW].data, reference[RAW].data)


def test_p_zero_skips():
    raw = raw_data()
    request = request_for(RAW=EXTENT)  # the whole source: no room to grow
    batch = run(sources(RAW=(raw, FINE)) + deform(p=0.0), request)
    np.testing.assert_array_equal(batch[RAW].data, raw)


def test_spatial_dims_two_warps_every_section_alike():
    section = raw_data()[0]
    stacked = np.stack([np.broadcast_to(section, EXTENT), np.broadcast_to(2 * section, EXTENT)])
    node = gp.DeformAugment((10, 10), (2, 2), spatial_dims=2)
    request = request_for(seed=11, RAW=(6, 20, 20))
    batch = run(sources(RAW=(stacked, FINE)) + node, request)
    data = batch[RAW].data
    assert data.shape == (2, 6, 20, 20)
    assert np.array_equal(data[:, :1].repeat(6, axis=1), data)
    np.testing.assert_allclose(data[1], 2 * data[0], rtol=1e-6)
    assert not np.allclose(data[0, 0], crop(stacked, request[RAW].roi)[0, 0])


def test_tasks_are_named_after_the_node():
    request = request_for(RAW=(16, 16, 16))
    with gp.build(sources(RAW=(raw_data(), FINE)) + deform(chunk_shape=8),
                  scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)
    keys = [k if isinstance(k, str) else k[0] for k in dict(lazy[RAW].data.__dask_graph__())]
    warps = [k for k in keys if k.startswith("deform-augment-") and "block" not in k
             and "transform" not in k]
    assert len(warps) == 2 * 2 * 2


def test_grown_roi_outside_the_source_is_an_error_naming_node_key_and_rois():
    request = request_for(RAW=(40, 40, 40))
    with pytest.raises(gp.BatchRequestError) as error:
        run(sources(RAW=(raw_data(), FINE)) + deform(), request)
    message = str(error.value)
    assert "DeformAugment" in message and "RAW" in message
    assert str(request[RAW].roi) in message and "[0:48, 0:48, 0:48]" in message


def test_a_pad_upstream_fills_the_grown_roi():
    request = request_for(RAW=(40, 40, 40))
    batch = run(sources(RAW=(raw_data(), FINE)) + gp.Pad(RAW, None) + deform(), request)
    assert batch[RAW].data.shape == (40, 40, 40)
    assert batch[RAW].data[20, 20, 20] > 0


def test_setup_errors():
    with pytest.raises(gp.PipelineSetupError, match="same number of dimensions"):
        gp.DeformAugment((4, 4, 4), (1, 1))
    with pytest.raises(gp.PipelineSetupError, match="rotation_axes"):
        gp.DeformAugment(4, 1, rotation_axes=(0, 3))
    with pytest.raises(gp.PipelineSetupError, match="scale_interval"):
        gp.DeformAugment(4, 1, scale_interval=(0, 1))
