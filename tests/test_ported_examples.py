"""gunpowder's two tutorials, ported by changing the import (examples/ported/), run with
values checked."""

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "ported"))

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
