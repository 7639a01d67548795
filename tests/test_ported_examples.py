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


# gunpowder's CREMI example (train.py, then predict.py with its checkpoint) and lsd's mtlsd
# training with lsd's own AddLocalShapeDescriptor; see the headers of examples/ported/.
import cremi_mknet  # noqa: E402
import cremi_predict  # noqa: E402
import cremi_train  # noqa: E402
import h5py  # noqa: E402


@pytest.fixture(scope="module")
def cremi_run(tmp_path_factory):
    """Train the CREMI port for two iterations in a fresh directory (the scripts read and
    write their files in the working directory, as the originals do)."""
    path = tmp_path_factory.mktemp("cremi")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        cremi_train.write_synthetic_cremi()
        cremi_mknet.create_network(**cremi_train.SMALL_TRAIN_NET, name="train_net")
        cremi_train.train(2, cache_size=2, num_workers=2, snapshot_every=1)
    return path


def test_cremi_train_port_trains_and_snapshots_gradients(cremi_run):
    assert (cremi_run / "train_net_checkpoint_2.index").exists()
    with h5py.File(cremi_run / "snapshots" / "batch_2.hdf", "r") as f:
        assert f["volumes/raw"].shape == (20, 52, 52) and f["volumes/raw"].compression == "gzip"
        assert "neuron_ids" not in f["volumes/labels"], "labels were not requested, as in gp"
        affs = f["volumes/labels/affs"][:]
        pred = f["volumes/pred_affs"][:]
        grad = f["volumes/pred_affs_gradients"][:]
        assert tuple(f["volumes/pred_affs"].attrs["resolution"]) == (40, 4, 4)
    assert affs.shape == pred.shape == grad.shape == (3, 8, 32, 32)
    assert affs.dtype == np.uint8 and set(np.unique(affs)) == {0, 1}
    assert 0 < pred.min() and pred.max() < 1
    # BalanceLabels' weights (positives and negatives weigh half each, no mask), then the
    # gradient of TF1's weighted MSE (sum over non-zero weights) with respect to the prediction
    positive = affs > 0
    fraction = np.clip(positive.mean(), 0.05, 0.95)
    weights = np.where(positive, 1 / (2 * fraction), 1 / (2 * (1 - fraction)))
    expected = 2 * weights * (pred - affs) / affs.size
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-9)


def test_cremi_predict_port_writes_the_models_predictions(cremi_run, monkeypatch):
    import keras

    monkeypatch.chdir(cremi_run)
    cremi_mknet.create_network(**cremi_predict.SMALL_TEST_NET, name="test_net")
    cremi_predict.predict(2)

    with h5py.File(cremi_run / "sample_A_padded_20160501.hdf", "r") as f:
        # Normalize of uint8: times 1/255 in float32, as gunpowder's in-place multiply
        raw = f["volumes/raw"][:].astype(np.float32) * np.float32(1 / 255)
    with h5py.File(cremi_run / "predictions_sample_A.hdf", "r") as f:
        written = f["volumes/pred_affs"][:]
        offset = tuple(f["volumes/pred_affs"].attrs["offset"])
        written_raw = f["volumes/raw"][:]
        raw_offset = tuple(f["volumes/raw"].attrs["offset"])
    # the raw ROI (56, 140, 140) shrunk by twice the context (12, 20, 20) on each side, in
    # 2 x 2 x 2 blocks of the network's output (16, 50, 50)
    assert written.shape == (3, 32, 100, 100) and offset == (480, 80, 80)
    context = np.array((6, 10, 10))
    z0, y0, x0 = (np.array(raw_offset) // (40, 4, 4))
    np.testing.assert_array_equal(
        written_raw, raw[z0:z0 + written_raw.shape[0], y0:y0 + written_raw.shape[1],
                         x0:x0 + written_raw.shape[2]])

    import tensorflow as tf

    model = keras.models.load_model(str(cremi_run / "test_net.keras"))
    tf.train.Checkpoint(model=model).read(str(cremi_run / "train_net_checkpoint_2")) \
        .expect_partial()
    for block in np.ndindex(2, 2, 2):
        out = np.array(block) * (16, 50, 50)  # in the written array
        begin = out + (12, 20, 20) - context  # input window in the raw volume
        window = raw[tuple(slice(b, b + s) for b, s in zip(begin, (28, 70, 70), strict=True))]
        expected = np.moveaxis(np.asarray(model(window[None, ..., None]))[0], -1, 0)
        got = written[(slice(None), *(slice(o, o + s)
                                      for o, s in zip(out, (16, 50, 50), strict=True)))]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture
def forget_gunpowder_alias():
    """The mtlsd script registers daskgp as gunpowder when imported; take that back after
    the test, so that other tests see no gunpowder module."""
    yield
    from daskgp.gunpowder_alias import MODULES

    for name, target in MODULES.items():
        if sys.modules.get(name) is sys.modules.get(target):
            del sys.modules[name]


def test_lsd_mtlsd_port_runs_lsds_own_node_and_resumes(tmp_path, monkeypatch,
                                                       forget_gunpowder_alias):
    import lsd_fib25_mtlsd_mknet
    import lsd_fib25_mtlsd_train

    assert sys.modules["gunpowder"] is gp, "the script registered daskgp as gunpowder for lsd"
    monkeypatch.chdir(tmp_path)
    lsd_fib25_vanilla_train.write_synthetic_samples(tmp_path / "data", shape=(96, 96, 96))
    lsd_fib25_mtlsd_mknet.create_network(**lsd_fib25_mtlsd_train.SMALL_NET, name="train_net")
    run = dict(data_dir=str(tmp_path / "data"), cache_size=2, num_workers=2, save_every=1,
               snapshot_every=1)
    batch = lsd_fib25_mtlsd_train.train_until(2, **run)

    labels, mask = batch[_key("GT_LABELS")].data, batch[_key("GT_LABELS_MASK")].data
    lsds, scale = batch[_key("GT_LSDS")].data, batch[_key("GT_LSDS_SCALE")].data
    assert lsds.shape == scale.shape == (10, 20, 20, 20) and lsds.dtype == np.float32
    assert 0 <= lsds.min() and lsds.max() <= 1 and lsds.std() > 0.01
    # lsd's mask is "labelled" (float32); UnmaskBackground hands back a bool array, which
    # flows on as gunpowder lets it
    assert scale.dtype == bool
    np.testing.assert_array_equal(scale, np.broadcast_to((labels != 0) | (mask == 0),
                                                         scale.shape))
    assert (labels == 0).any(), "GrowBoundary made boundaries"
    np.testing.assert_array_equal(lsds[:, labels == 0], 0)
    assert batch.iteration == 2

    with h5py.File(tmp_path / "snapshots" / "batch_2.hdf", "r") as f:
        assert f["volumes/pred_lsds"].shape == (10, 20, 20, 20)
        assert f["volumes/affs_gradient"].shape == (3, 20, 20, 20)
        assert f["volumes/gt_affinities"].dtype == np.float32  # dataset_dtypes
        np.testing.assert_array_equal(f["volumes/gt_lsds"][:], lsds)

    # the original's resume logic: tf.train.latest_checkpoint('.') finds iteration 2
    assert lsd_fib25_mtlsd_train.train_until(3, **run).iteration == 3
    assert lsd_fib25_mtlsd_train.train_until(3, **run) is None


def test_lsds_own_node_gives_gunpowders_numbers():
    """lsd's AddLocalShapeDescriptor and the mtlsd script's UnmaskBackground, on daskgp via
    register_as_gunpowder(), against the same code run by gunpowder 1.5.0 (fixtures made by
    tests/data/make_lsd_fixtures.py)."""
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import lsd_cases

    fixtures = np.load(ROOT / "tests" / "data" / "lsd_fixtures.npz")
    undo = gp.register_as_gunpowder()
    try:
        outputs = lsd_cases.run_cases(gp)
    finally:
        undo()
    assert sorted(outputs) == sorted(fixtures.files)
    for name in fixtures.files:
        assert outputs[name].dtype == fixtures[name].dtype, name
        np.testing.assert_array_equal(outputs[name], fixtures[name], err_msg=name)


def test_register_as_gunpowder_refuses_next_to_the_real_one(monkeypatch):
    import types

    from daskgp.gunpowder_alias import register_as_gunpowder

    real = types.ModuleType("gunpowder")
    real.__file__ = "/site-packages/gunpowder/__init__.py"
    monkeypatch.setitem(sys.modules, "gunpowder", real)
    with pytest.raises(ImportError, match=r"gunpowder is already imported from "
                                          r"'/site-packages/gunpowder/__init__.py'"):
        register_as_gunpowder()
    assert sys.modules["gunpowder"] is real
