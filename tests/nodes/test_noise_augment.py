"""NoiseAugment: skimage's noise modes, chunk-wise, seeded per chunk, scheduler-independent."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW = gp.ArrayKey("RAW")
SHAPE = (32, 64, 64)


def levels(shape=SHAPE, signed=False, seed=0) -> np.ndarray:
    """float32 values k/255 (256 levels, like normalized uint8), or 2*k/255 - 1 if signed."""
    values = np.random.default_rng(seed).integers(0, 256, shape) / 255
    return (2 * values - 1 if signed else values).astype(np.float32)


def noisy(data, seed=1, scheduler="sync", chunks=(16, 32, 32), **node_kwargs) -> np.ndarray:
    source = array_source(RAW, da.from_array(data, chunks=chunks))
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, data.shape)
    with gp.build(source + gp.NoiseAugment(RAW, **node_kwargs), scheduler=scheduler) as p:
        return p.request_batch(request)[RAW].data


def test_gaussian_has_the_requested_mean_and_variance():
    data = np.full(SHAPE, 0.5, np.float32)
    out = noisy(data, mode="gaussian", mean=0.02, var=0.004)
    assert out.dtype == np.float32
    noise = out.astype(np.float64) - data
    assert abs(noise.mean() - 0.02) < 0.001
    assert abs(noise.var() - 0.004) < 0.0002
    # Chunks draw from their own generators: no two chunks repeat each other's noise.
    assert not np.allclose(noise[:16, :32, :32], noise[16:, :32, :32])


def test_same_seed_same_noise_other_seed_other_noise():
    data = levels()
    first = noisy(data, seed=3)
    np.testing.assert_array_equal(first, noisy(data, seed=3))
    assert not np.array_equal(first, noisy(data, seed=4))


def test_clip_keeps_the_range_and_clip_false_does_not():
    data = levels()
    clipped = noisy(data, var=0.05)
    assert clipped.min() == 0 and clipped.max() == 1
    unclipped = noisy(data, var=0.05, clip=False)
    assert unclipped.min() < 0 and unclipped.max() > 1
    np.testing.assert_array_equal(np.clip(unclipped, 0, 1), clipped)
    signed = noisy(levels(signed=True), var=0.05)
    assert signed.min() == -1 and signed.max() == 1


def test_poisson_rescales_by_the_number_of_levels():
    data = levels()
    out = noisy(data, mode="poisson", clip=False).astype(np.float64)
    counts = out * 256  # 256 unique values: poisson draws of data * 256, divided by 256
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    bright = data > 0.9
    assert abs(out[bright].mean() - data[bright].mean()) < 0.01
    noise = out[bright] - data[bright]
    assert abs(noise.var() - data[bright].mean() / 256) < 0.0003


def test_poisson_on_signed_data_returns_to_the_signed_range():
    data = levels(signed=True)
    out = noisy(data, mode="poisson").astype(np.float64)
    assert out.min() >= -1 and out.max() <= 1 and out.min() < -0.5
    old_max = float(data.max())
    counts = (out + 1) / (old_max + 1) * 256
    unclipped = out > -1  # clipped voxels no longer sit on the count grid
    np.testing.assert_allclose(counts[unclipped], np.round(counts[unclipped]), atol=1e-3)
    assert abs(out.mean() - data.mean()) < 0.01


@pytest.mark.parametrize("signed", [False, True])
def test_salt_and_pepper(signed):
    data = levels(signed=signed) * 0.5
    out = noisy(data, mode="s&p", amount=0.2, salt_vs_pepper=0.25)
    changed = out != data
    low = -1 if signed else 0
    assert set(np.unique(out[changed])) <= {low, 1}
    assert abs(changed.mean() - 0.2) < 0.01
    assert abs((out[changed] == 1).mean() - 0.25) < 0.02
    salt = noisy(data, mode="salt", amount=0.1)
    assert set(np.unique(salt[salt != data])) == {1}
    pepper = noisy(data, mode="pepper", amount=0.1)
    assert set(np.unique(pepper[pepper != data])) == {low}


def test_speckle_is_proportional_to_the_signal():
    data = levels()
    data[:4] = 0
    out = noisy(data, mode="speckle", var=0.01, clip=False).astype(np.float64)
    np.testing.assert_array_equal(out[:4], 0)
    bright = data > 0.5
    relative = (out[bright] - data[bright]) / data[bright]
    assert abs(relative.std() - 0.1) < 0.005


def test_identical_on_every_scheduler(scheduler):
    # Each chunk is seeded by (seed drawn for the request, block index): the batch does not
    # depend on which worker, thread or process draws which chunk, nor in what order.
    data = levels((16, 16, 16))
    source = array_source(RAW, da.from_array(data, chunks=8))
    pipeline = source + gp.NoiseAugment(RAW, mode="poisson") + gp.NoiseAugment(RAW, var=0.02)
    request = gp.BatchRequest(random_seed=5)
    request.add(RAW, data.shape)
    results = []
    for each in ("sync", scheduler):
        with gp.build(pipeline, scheduler=each) as p:
            results.append(p.request_batch(request)[RAW].data)
    assert not np.array_equal(results[0], data)
    np.testing.assert_array_equal(results[0], results[1])


def test_p_zero_skips():
    data = levels()
    np.testing.assert_array_equal(noisy(data, p=0.0), data)


def test_graph_is_lazy_and_named_after_the_node():
    source = array_source(RAW, da.from_array(levels(), chunks=16))
    request = gp.BatchRequest(random_seed=1)
    request.add(RAW, SHAPE)
    with gp.build(source + gp.NoiseAugment(RAW)) as p:
        lazy = p.request_lazy_batch(request)[RAW].data
    assert isinstance(lazy, da.Array) and lazy.name.startswith("noise-augment-")


def test_user_errors_name_the_node_and_key():
    with pytest.raises(gp.PipelineSetupError, match=r"NoiseAugment.*RAW.*'localvar'"):
        gp.NoiseAugment(RAW, mode="localvar")
    with pytest.raises(gp.PipelineSetupError, match=r"NoiseAugment.*RAW.*amount"):
        gp.NoiseAugment(RAW, mode="gaussian", amount=0.1)
    with pytest.raises(gp.PipelineSetupError, match=r"NoiseAugment.*RAW.*uint8"):
        with gp.build(array_source(RAW, np.zeros((4, 4, 4), np.uint8)) + gp.NoiseAugment(RAW)):
            pass
    with pytest.raises(gp.BatchError, match=r"NoiseAugment.*RAW.*outside \[-1, 1\]"):
        noisy(levels((8, 8, 8)) + 1.5, chunks=4)
