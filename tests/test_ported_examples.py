"""examples/ported/: daskgp re-expressions of gunpowder's two tutorials and of lsd's FIB-25
affinity training (same nodes, order and parameters), run with values checked."""

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "ported"))

import lsd_fib25_vanilla_train  # noqa: E402
import tutorial_batch_provider  # noqa: E402
import tutorial_simple_pipeline  # noqa: E402

import daskgp as gp  # noqa: E402


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("tutorial")
    tutorial_simple_pipeline.make_sample_data(path / "sample_data.zarr", 384)
    raw = zarr.open(str(path / "sample_data.zarr"), mode="r")["raw"][:]
    return path, raw


def test_simple_pipeline_tutorial(sample):
    path, raw = sample
    batches = tutorial_simple_pipeline.run(path)
    np.testing.assert_array_equal(batches["minimal"][_key("RAW")].data,
                                  raw[:, 0:64, 0:64])
    np.testing.assert_array_equal(batches["offset"][_key("RAW")].data, raw[:, 50:114, 150:214])
    assert batches["non_square"][_key("RAW")].data.shape == (3, 64, 128)
    assert batches["stack"][_key("RAW")].data.shape == (5, 3, 64, 128)
    gt = batches["offset_gt"][_key("GROUND_TRUTH")].data
    assert gt.shape == (5, 1, 64, 128) and set(np.unique(gt)) <= {0.0, 1.0}
    intensity = batches["intensity"][_key("RAW")].data
    assert intensity.dtype == np.float32 and 0 <= intensity.min() and intensity.max() <= 1


def test_batch_provider_tutorial(sample):
    path, raw = sample
    batches = tutorial_batch_provider.run(path)
    normalized = raw.astype(np.float32) / 255
    # Smooth asks for context, so its output is the whole image's filter, cropped.
    whole = ndimage.gaussian_filter(normalized, sigma=5.0, truncate=4, mode="nearest")
    np.testing.assert_allclose(batches["smooth_left"][_key("RAW")].data,
                               whole[:, 100:228, 100:228], rtol=1e-6)
    np.testing.assert_allclose(batches["smooth_right"][_key("RAW")].data,
                               whole[:, 100:228, 228:356], rtol=1e-6)
    naive = batches["naive_left"][_key("RAW")].data
    assert not np.allclose(naive[:, :, -1], whole[:, 100:228, 227], rtol=1e-3), \
        "without context the border differs"
    new = batches["new_array"]
    np.testing.assert_array_equal(new[_key("INVERTED_RAW")].data, 1 - new[_key("RAW")].data)
    overlap = batches["new_array_overlapping"]
    np.testing.assert_array_equal(overlap[_key("INVERTED_RAW")].data[:, :64, :64],
                                  1 - overlap[_key("RAW")].data[:, 64:, 64:])


def _key(name):
    return gp.ArrayKey(name)


def test_lsd_fib25_vanilla_affinity_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the script writes log/ and snapshots/ where it runs
    lsd_fib25_vanilla_train.write_synthetic_samples(tmp_path / "data", shape=(96, 96, 96))
    batch = lsd_fib25_vanilla_train.train(
        2, str(tmp_path / "data"), input_shape=(36,) * 3, output_shape=(20,) * 3,
        downsample_factors=[(2, 2, 2)], cache_size=2, num_workers=2)

    labels, mask = batch[_key("GT_LABELS")].data, batch[_key("GT_LABELS_MASK")].data
    gt_affs, scale = batch[_key("GT_AFFS")].data, batch[_key("GT_AFFS_SCALE")].data
    raw = batch[_key("RAW")].data
    assert raw.shape == (36, 36, 36) and gt_affs.shape == scale.shape == (3, 20, 20, 20)
    assert 0 <= raw.min() and raw.max() <= 1, "IntensityAugment clips; 2x-1 then x/2+.5"
    # AddAffinities over neighborhood -z, -y, -x, then Normalize of its uint8 (1/255, as in
    # gunpowder); the first slice of each axis needs labels outside the batch.
    for axis in range(3):
        here = [slice(None)] * 3
        here[axis] = slice(1, None)
        before = [slice(None)] * 3
        before[axis] = slice(None, -1)
        expected = (labels[tuple(here)] == labels[tuple(before)]) & (labels[tuple(here)] > 0)
        np.testing.assert_array_equal(gt_affs[axis][tuple(here)], expected / np.float32(255))
    # BalanceLabels without a mask: positives and negatives weigh half each.
    positive = gt_affs > 0
    fraction = np.clip(positive.mean(), 0.05, 0.95)
    np.testing.assert_allclose(scale[positive], 1 / (2 * fraction), rtol=1e-6)
    np.testing.assert_allclose(scale[~positive], 1 / (2 * (1 - fraction)), rtol=1e-6)
    assert labels.dtype == np.uint64 and set(np.unique(mask)) <= {0, 1}

    snapshots = sorted((tmp_path / "snapshots").iterdir())
    assert [s.name for s in snapshots] == ["batch_1.zarr", "batch_2.zarr"]
    last = zarr.open(str(snapshots[-1]), mode="r")
    np.testing.assert_array_equal(last["volumes/labels/neuron_ids"][:], labels)
    predicted = last["volumes/pred_affinities"][:]
    assert predicted.shape == (3, 20, 20, 20) and 0 < predicted.min() < predicted.max() < 1
    assert list((tmp_path / "log").iterdir()), "Train logged the loss to TensorBoard"
