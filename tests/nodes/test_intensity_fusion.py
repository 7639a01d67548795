"""IntensityAugment fused into a warp's task (``transforms.ScaleShift``): the same bits as its own
task on the warp's output, on random transforms, through SimpleAugment's views, every scheduler."""

from __future__ import annotations

import math

import numpy as np
import pytest

import daskgp as gp
from daskgp.nodes import intensity_augment
from daskgp.transforms import ScaleShift, sectioned_mean
from tests.helpers import array_source

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")


def pipeline(warp: str = "elastic", simple: bool = True, chunk_shape=None, intensity=True):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    gt = rng.integers(0, 4, (40, 48, 48), dtype=np.uint64)
    source = (array_source(RAW, raw), array_source(GT, gt)) + gp.MergeProvider()
    if warp == "elastic":  # jitter and scale in z: the warp samples in 3D
        node = gp.ElasticAugment([4, 10, 10], [0.5, 2, 2], [0, math.pi / 2.0],
                                 scale_interval=(0.9, 1.1), chunk_shape=chunk_shape)
    elif warp == "planar":  # the seed's: section by section, sums taken as they are written
        node = gp.ElasticAugment([4, 10, 10], [0, 2, 2], [0, math.pi / 2.0])
    else:
        node = gp.DeformAugment([4, 10, 10], [1, 2, 2], rotate=True)
    chain = source + gp.Normalize(RAW) + gp.RandomLocation() + node
    if simple:
        chain = chain + gp.SimpleAugment(transpose_only=[1, 2])
    return chain + gp.IntensityAugment(RAW, 0.8, 1.2, -0.1, 0.1) if intensity else chain


def request(seed: int) -> gp.BatchRequest:
    r = gp.BatchRequest(random_seed=seed)
    r.add(RAW, (8, 16, 16))
    r.add(GT, (6, 10, 10))
    return r


def batches(chain, seeds, scheduler="sync"):
    """The computed batches of ``seeds`` and the task-name prefixes of each RAW graph."""
    out = []
    with gp.build(chain, scheduler=scheduler, seed=3) as p:
        for seed in seeds:
            lazy = p.request_lazy_batch(request(seed))
            keys = dict(lazy[RAW].data.__dask_graph__())
            names = {(k[0] if isinstance(k, tuple) else k).split("-")[0] for k in keys}
            out.append((lazy.compute(scheduler=scheduler), names))
    return out


def unfused(monkeypatch, chain, seeds):
    """The reference: IntensityAugment's own task on the warp's (oriented) output."""
    with monkeypatch.context() as m:
        m.setattr(intensity_augment, "warp_rebuild", lambda data: None)
        return batches(chain, seeds)


SEEDS = range(6)


@pytest.mark.parametrize("warp, simple", [("elastic", True), ("elastic", False),
                                          ("planar", True), ("planar", False),
                                          ("deform", True)])
def test_fused_equals_the_unfused_reference_bit_for_bit(monkeypatch, warp, simple):
    fused = batches(pipeline(warp, simple), SEEDS)
    reference = unfused(monkeypatch, pipeline(warp, simple), SEEDS)
    for (batch, names), (expected, reference_names) in zip(fused, reference, strict=True):
        # Fused: no IntensityAugment task of its own; unfused: there is one.
        assert "intensity" not in names and "intensity" in reference_names
        assert batch[RAW].data.dtype == np.float32
        np.testing.assert_array_equal(batch[RAW].data, expected[RAW].data)
        np.testing.assert_array_equal(batch[GT].data, expected[GT].data)
    # The augmentation did something: not the plain warp's values.
    plain = batches(pipeline(warp, simple, intensity=False), [0])[0][0]
    assert not np.allclose(plain[RAW].data, fused[0][0][RAW].data, atol=1e-3)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_fused_is_identical_on_every_scheduler(scheduler):
    reference = batches(pipeline("planar"), range(2))
    got = batches(pipeline("planar"), range(2), scheduler)
    for (batch, _), (expected, _) in zip(got, reference, strict=True):
        np.testing.assert_array_equal(batch[RAW].data, expected[RAW].data)


def test_an_output_in_several_chunks_is_not_fused_and_agrees_to_rounding():
    # Several chunks: the mean is a dask reduction (another summation order), no fusion.
    chunked = batches(pipeline(chunk_shape=(4, 8, 8)), range(3))
    whole = batches(pipeline(), range(3))
    for (batch, names), (expected, _) in zip(chunked, whole, strict=True):
        assert "intensity" in names
        np.testing.assert_allclose(batch[RAW].data, expected[RAW].data, atol=1e-6)


def test_values_outside_the_unit_range_raise_from_the_warps_task():
    out = np.array([[0.2, 1.5]], np.float32)
    with pytest.raises(gp.BatchError, match="outside"):
        ScaleShift(1.0, 0.0, True, "RAW has values outside [0, 1]").apply(out)
    out = np.array([[0.2, 1.5]], np.float32)
    ScaleShift(1.0, 0.25, False, "unused").apply(out)  # clip=False: no check, no clip
    np.testing.assert_allclose(out, [[0.45, 1.75]], rtol=1e-6)


@pytest.mark.parametrize("clip", [True, False])
def test_scale_shift_in_place_gives_the_numpy_expressions_bits(clip):
    data = np.random.default_rng(5).random((7, 9, 11)).astype(np.float32)
    out = data.copy()
    ScaleShift(1.3, -0.05, clip, "outside").apply(out)
    mean = np.float32(sectioned_mean(data))
    # The mean: float64 section sums in a fixed order, within rounding of numpy's.
    assert abs(sectioned_mean(data) - data.mean(dtype=np.float64)) < 1e-12
    expected = (data - mean) * np.float32(1.3) + (mean + np.float32(-0.05))
    if clip:
        expected = np.clip(expected, 0, 1)
    np.testing.assert_array_equal(out, expected)
