"""IntensityAugment: gunpowder's formula, lazily, per array or per slab, seeded."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")


def smooth_raw(shape, seed=0, dtype=np.float32) -> np.ndarray:
    """Float values in [0.2, 0.8], different in every voxel."""
    return np.random.default_rng(seed).uniform(0.2, 0.8, shape).astype(dtype)


def full_request(key, shape, seed=0) -> gp.BatchRequest:
    request = gp.BatchRequest(random_seed=seed)
    request.add(key, shape)
    return request


def run(pipeline, request, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        return p.request_batch(request)


def fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(scale, offset) with y = scale * x + offset, exactly for affine data."""
    x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    scale = np.polyfit(x, y, 1)
    residual = np.abs(np.polyval(scale, x) - y).max()
    assert residual < 1e-5, f"not affine: residual {residual}"
    return float(scale[0]), float(scale[1])


@pytest.mark.parametrize("chunks", [None, (3, 5, 4)])
def test_fixed_parameters_give_gunpowders_formula(chunks):
    data = smooth_raw((6, 10, 8))
    source_data = data if chunks is None else da.from_array(data, chunks=chunks)
    node = gp.IntensityAugment(RAW, 1.5, 1.5, 0.05, 0.05)
    batch = run(array_source(RAW, source_data) + node, full_request(RAW, data.shape))
    mean = data.mean(dtype=np.float64)
    expected = np.clip(mean + (data - mean) * 1.5 + 0.05, 0, 1)
    assert batch[RAW].data.dtype == np.float32
    np.testing.assert_allclose(batch[RAW].data, expected, atol=1e-6)


def test_drawn_parameters_lie_in_their_ranges_and_depend_on_the_seed():
    data = smooth_raw((4, 12, 12))
    node = gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, clip=False)
    mean = data.mean(dtype=np.float64)
    drawn = set()
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        for seed in range(8):
            out = p.request_batch(full_request(RAW, data.shape, seed))[RAW].data
            again = p.request_batch(full_request(RAW, data.shape, seed))[RAW].data
            np.testing.assert_array_equal(out, again)
            scale, offset = fit_affine(data, out)
            shift = offset - mean * (1 - scale)
            assert 0.5 <= scale <= 1.5 and -0.1 - 1e-6 <= shift <= 0.1 + 1e-6
            drawn.add(round(scale, 4))
    assert len(drawn) == 8


def test_z_section_wise_augments_each_section_on_its_own():
    data = smooth_raw((5, 9, 9))
    with pytest.warns(DeprecationWarning):
        node = gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, z_section_wise=True, clip=False)
    out = run(array_source(RAW, data) + node, full_request(RAW, data.shape, 3))[RAW].data
    scales = []
    for z in range(5):
        scale, offset = fit_affine(data[z], out[z])
        section_mean = data[z].mean(dtype=np.float64)
        shift = offset - section_mean * (1 - scale)
        assert 0.5 <= scale <= 1.5 and -0.1 - 1e-6 <= shift <= 0.1 + 1e-6
        scales.append(scale)
    assert len({round(s, 4) for s in scales}) == 5


def test_slab_over_channels_and_a_remainder():
    data = smooth_raw((2, 5, 6, 6))  # channels, z, y, x
    node = gp.IntensityAugment(RAW, 1.2, 1.2, 0.03, 0.03, slab=(1, 2, -1, -1))
    chunked = da.from_array(data, chunks=(2, 3, 3, 3))
    batch = run(array_source(RAW, chunked) + node, full_request(RAW, (5, 6, 6)))
    expected = np.empty_like(data)
    for c in range(2):
        for z in range(0, 5, 2):  # slabs [0:2], [2:4], [4:5]
            part = data[c, z : z + 2]
            mean = part.mean(dtype=np.float64)
            expected[c, z : z + 2] = np.clip(mean + (part - mean) * 1.2 + 0.03, 0, 1)
    np.testing.assert_allclose(batch[RAW].data, expected, atol=1e-6)


def test_clip_bounds_the_result_and_clip_false_does_not():
    data = smooth_raw((4, 6, 6))
    clipped = run(
        array_source(RAW, data) + gp.IntensityAugment(RAW, 3, 3, 0.5, 0.5),
        full_request(RAW, data.shape),
    )[RAW].data
    assert clipped.min() >= 0 and clipped.max() == 1
    unclipped = run(
        array_source(RAW, data) + gp.IntensityAugment(RAW, 3, 3, 0.5, 0.5, clip=False),
        full_request(RAW, data.shape),
    )[RAW].data
    assert unclipped.max() > 1
    np.testing.assert_allclose(np.clip(unclipped, 0, 1), clipped, atol=1e-6)


def test_integer_data_is_an_error_naming_the_key():
    source = array_source(RAW, np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(gp.PipelineSetupError, match=r"IntensityAugment.*RAW.*uint8"):
        with gp.build(source + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)):
            pass


def test_values_outside_unit_range_are_an_error_when_computed():
    data = smooth_raw((4, 6, 6)) + 1
    node = gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)
    with pytest.raises(gp.BatchError, match=r"IntensityAugment.*RAW.*outside \[0, 1\]"):
        run(array_source(RAW, data) + node, full_request(RAW, data.shape))
    node = gp.IntensityAugment(RAW, 1, 1, 0, 0, clip=False)
    out = run(array_source(RAW, data) + node, full_request(RAW, data.shape))[RAW].data
    np.testing.assert_allclose(out, data, atol=1e-6)


def test_p_zero_skips_and_other_arrays_pass_through():
    data = smooth_raw((4, 6, 6))
    labels = np.arange(4 * 6 * 6).reshape(4, 6, 6)
    source = (array_source(RAW, data), array_source(GT, labels)) + gp.MergeProvider()
    request = full_request(RAW, data.shape)
    request.add(GT, (4, 6, 6))
    batch = run(source + gp.IntensityAugment(RAW, 2, 2, 0.1, 0.1, p=0.0), request)
    np.testing.assert_array_equal(batch[RAW].data, data)
    batch = run(source + gp.IntensityAugment(RAW, 2, 2, 0.1, 0.1), request)
    assert not np.allclose(batch[RAW].data, data)
    np.testing.assert_array_equal(batch[GT].data, labels)
    only_gt = full_request(GT, (4, 6, 6))
    batch = run(source + gp.IntensityAugment(RAW, 2, 2, 0.1, 0.1), only_gt)
    assert list(batch.arrays) == [GT]


def test_graph_is_lazy_and_named_after_the_node():
    data = da.from_array(smooth_raw((8, 8, 8)), chunks=4)
    pipeline = array_source(RAW, data) + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)
    with gp.build(pipeline) as p:
        lazy = p.request_lazy_batch(full_request(RAW, (8, 8, 8), 4))[RAW].data
    assert isinstance(lazy, da.Array)
    assert lazy.name.startswith("intensity-augment-")
    assert lazy.numblocks == (2, 2, 2)


def test_identical_on_every_scheduler(scheduler):
    data = da.from_array(smooth_raw((8, 8, 8)), chunks=4)
    node = gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, slab=(2, -1, -1))
    pipeline = array_source(RAW, data) + node
    reference = run(pipeline, full_request(RAW, (8, 8, 8), 11))[RAW].data
    got = run(pipeline, full_request(RAW, (8, 8, 8), 11), scheduler)[RAW].data
    np.testing.assert_array_equal(reference, got)


def test_z_section_wise_false_with_a_slab_is_the_slab():
    data = smooth_raw((4, 6, 6))
    slab = gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, slab=(2, -1, -1))
    with pytest.warns(DeprecationWarning, match="z_section_wise"):
        both = gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, z_section_wise=False,
                                   slab=(2, -1, -1))
    expected = run(array_source(RAW, data) + slab, full_request(RAW, data.shape, 5))[RAW].data
    out = run(array_source(RAW, data) + both, full_request(RAW, data.shape, 5))[RAW].data
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, data)
    with pytest.raises(gp.PipelineSetupError, match="mutually exclusive"):
        gp.IntensityAugment(RAW, 0.5, 1.5, -0.1, 0.1, z_section_wise=True, slab=(2, -1, -1))


@pytest.mark.parametrize("view", ["contiguous", "mirrored", "transposed", "both", "strided"])
def test_mirrored_and_transposed_blocks_give_the_numpy_expressions_bits(view):
    from daskgp.nodes.intensity_augment import _scale_shift

    data = np.random.default_rng(3).random((5, 6, 7)).astype(np.float32)
    block = {"contiguous": data, "mirrored": data[::-1, :, ::-1],
             "transposed": data.transpose(0, 2, 1),
             "both": data[:, ::-1].transpose(0, 2, 1)[::-1],
             "strided": data[::2]}[view]
    mean, scale, shift = np.float32(0.45), np.float32(1.1), np.float32(0.05)
    expected = np.clip((block - mean) * scale + (mean + shift), 0, 1)
    result = _scale_shift(block, mean, scale, shift, True, "outside")
    assert result.shape == block.shape
    assert np.array_equal(result, expected)
    block = block.copy()
    block[1, 2, 3] = -0.5
    with pytest.raises(gp.BatchError, match="outside"):
        _scale_shift(block, mean, scale, shift, True, "outside")
