"""Real TensorFlow on CPU: training, checkpoints, Predict, the tf.data adapter, errors."""

import os

import keras
import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW = gp.ArrayKey("RAW")
TARGET = gp.ArrayKey("TARGET")
PRED = gp.ArrayKey("PRED")
GRAD = gp.ArrayKey("PRED_GRADIENT")


def volumes(seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(24, 48, 48)).astype(np.float32)
    target = (3.0 * raw - 1.0).astype(np.float32)  # learnable by a 1x1x1 convolution
    return raw, target


def source(voxel_size=(2, 1, 1)):
    raw, target = volumes()
    return (array_source(RAW, raw, voxel_size=voxel_size),
            array_source(TARGET, target, voxel_size=voxel_size)) + gp.MergeProvider()


def model(shape=(8, 16, 16)):
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(*shape, 1))
    outputs = keras.layers.Conv3D(1, 1, padding="same")(inputs)
    return keras.Model(inputs, outputs)


def request(voxel_size=(2, 1, 1)):
    r = gp.BatchRequest()
    for key in (RAW, TARGET, PRED):
        r.add(key, gp.Coordinate(8, 16, 16) * gp.Coordinate(voxel_size))
    return r


def train_node(m, basename, **kwargs):
    return gp.tensorflow.Train(
        m, loss=keras.losses.MeanSquaredError(), optimizer=keras.optimizers.SGD(0.2, momentum=0.5),
        inputs={0: RAW}, outputs={0: PRED}, loss_inputs={0: TARGET, 1: PRED},
        checkpoint_basename=str(basename), **kwargs)


def test_loss_decreases_and_outputs_carry_the_requested_roi(tmp_path):
    train = train_node(model(), tmp_path / "model", save_every=1000, log_dir=str(tmp_path / "log"))
    pipeline = source() + gp.RandomLocation() + gp.PreCache(cache_size=4, num_workers=2) + train
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        batches = [p.request_batch(request()) for _ in range(40)]
    losses = [b.loss for b in batches]
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:5]), losses
    last = batches[-1]
    assert last.iteration == 40
    assert last[PRED].spec.roi == request()[PRED].roi
    assert last[PRED].spec.voxel_size == gp.Coordinate(2, 1, 1)
    assert last[PRED].data.shape == (1, 1, 8, 16, 16)
    np.testing.assert_allclose(last[PRED].data[0, 0], 3 * last[RAW].data - 1, atol=0.5)
    assert os.listdir(tmp_path / "log"), "TensorBoard events are written"


def test_resume_restores_weights_optimizer_and_iteration(tmp_path):
    first = train_node(model(), tmp_path / "model", save_every=5)
    with gp.build(source() + gp.RandomLocation() + first, scheduler="sync", seed=1) as p:
        for _ in range(5):
            p.request_batch(request())
    assert os.path.exists(str(tmp_path / "model") + "_checkpoint_5.index")
    saved_weights = [w.numpy().copy() for w in first.model.weights]
    saved_moments = [v.numpy().copy() for v in first.optimizer.variables]

    second = train_node(model(), tmp_path / "model", save_every=5)
    with gp.build(source() + gp.RandomLocation() + second, scheduler="sync", seed=1) as p:
        assert second.iteration == 5
        for a, b in zip(saved_weights, second.model.weights, strict=True):
            np.testing.assert_array_equal(a, b.numpy())
        for a, b in zip(saved_moments, second.optimizer.variables, strict=True):
            np.testing.assert_array_equal(a, b.numpy())
        assert p.request_batch(request()).iteration == 6


def test_checkpoints_are_found_by_tf_train_latest_checkpoint(tmp_path):
    """gunpowder's TF scripts resume with ``int(tf.train.latest_checkpoint('.').split('_')
    [-1])``: TF1's Saver kept a ``checkpoint`` state file, and so does daskgp's Train."""
    import tensorflow as tf

    train = train_node(model(), tmp_path / "net", save_every=2)
    with gp.build(source() + gp.RandomLocation() + train, scheduler="sync", seed=1) as p:
        for _ in range(4):
            p.request_batch(request())
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest == str(tmp_path / "net_checkpoint_4")
    assert int(latest.split("_")[-1]) == 4
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "net_checkpoint_2", "net_checkpoint_4"]


def test_gradients_with_respect_to_outputs(tmp_path):
    train = train_node(model(), tmp_path / "model", gradients={0: GRAD})
    r = request()
    r.add(GRAD, (16, 16, 16))
    with gp.build(source() + train, scheduler="sync", seed=0) as p:
        batch = p.request_batch(r)
    pred, target = batch[PRED].data[0, 0], batch[TARGET].data
    expected = 2 * (pred - target) / pred.size  # d/dpred of the mean squared error
    np.testing.assert_allclose(batch[GRAD].data[0, 0], expected, rtol=1e-4, atol=1e-8)


def test_a_channel_axis_meets_the_models_channels(tmp_path):
    """A (C, z, y, x) target (affinities, LSDs: gunpowder batches have no batch axis) is one
    sample with C channels, so it lines up with the model's (1, z, y, x, C) output instead of
    broadcasting as C samples of one channel."""
    raw, _ = volumes()
    target = np.stack([raw, 2 * raw, -raw]).astype(np.float32)  # (3, 24, 48, 48)
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(8, 16, 16, 1))
    three = keras.Model(inputs, keras.layers.Conv3D(3, 1)(inputs))
    pipeline = (array_source(RAW, raw, voxel_size=(2, 1, 1)),
                array_source(TARGET, target, voxel_size=(2, 1, 1))) + gp.MergeProvider()
    train = train_node(three, tmp_path / "model", gradients={0: GRAD})
    r = request()
    r.add(GRAD, (16, 16, 16))
    with gp.build(pipeline + train, scheduler="sync", seed=0) as p:
        batch = p.request_batch(r)
    pred, target = batch[PRED].data[0], batch[TARGET].data
    assert pred.shape == target.shape == (3, 8, 16, 16)
    expected = 2 * (pred - target) / pred.size
    np.testing.assert_allclose(batch[GRAD].data[0], expected, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(batch.loss, np.mean((pred - target) ** 2), rtol=1e-4)


def test_predict_equals_calling_the_model():
    m = model()
    r = request()
    del r[TARGET]
    with gp.build(source() + gp.tensorflow.Predict(m, inputs={0: RAW}, outputs={0: PRED}),
                  scheduler="threads", seed=0) as p:
        batch = p.request_batch(r)
    direct = m(batch[RAW].data[None, ..., None], training=False).numpy()
    np.testing.assert_allclose(batch[PRED].data[0, 0], direct[0, ..., 0], rtol=1e-6)


def test_predict_fills_unset_voxel_sizes_from_the_inputs():
    r = request()
    del r[TARGET]
    specs = {PRED: gp.ArraySpec(dtype=np.float32)}  # no voxel size, as gunpowder users write
    predict = gp.tensorflow.Predict(model(), inputs={0: RAW}, outputs={0: PRED},
                                    array_specs=specs)
    with gp.build(source() + predict, scheduler="sync", seed=0) as p:
        assert p.spec[PRED].voxel_size == gp.Coordinate(2, 1, 1)
        assert p.spec[PRED].interpolatable is False
        assert p.request_batch(r)[PRED].data.shape[-3:] == (8, 16, 16)


def test_tf1_signatures_are_refused_with_what_to_pass_instead():
    with pytest.raises(gp.PipelineSetupError, match=r"TF2/Keras 3.*meta-graph name "
                       r"'train_net'.*pass model=, loss=, optimizer=, inputs=, outputs=, "
                       r"loss_inputs="):
        gp.tensorflow.Train("train_net", "optimizer", "loss", {"raw": RAW}, {"pred": PRED},
                            {"pred": GRAD})
    with pytest.raises(gp.PipelineSetupError, match=r"got graph=.*pass model=, inputs="):
        gp.tensorflow.Predict(checkpoint="net_checkpoint_1", inputs={"raw": RAW},
                              outputs={"pred": PRED}, graph="net.meta")


def test_dataset_yields_the_batches_of_request_batch():
    pipeline = source() + gp.RandomLocation()
    r = request()
    del r[PRED]
    with gp.build(pipeline, scheduler="sync", seed=9) as p:
        expected = [p.request_batch(r) for _ in range(4)]
    data = gp.tensorflow.dataset(pipeline, r, seed=9, num_batches=4)
    assert data.element_spec["RAW"].shape == (8, 16, 16)
    got = list(data.as_numpy_iterator())
    assert len(got) == 4
    for element, batch in zip(got, expected, strict=True):
        np.testing.assert_array_equal(element["RAW"], batch[RAW].data)
        np.testing.assert_array_equal(element["TARGET"], batch[TARGET].data)


def test_missing_input_key_is_named(tmp_path):
    train = train_node(model(), tmp_path / "model")
    r = request()
    del r[RAW]
    with gp.build(source() + train, scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError, match="input RAW is not in the request"):
            p.request_batch(r)


def test_output_shape_mismatch_is_named(tmp_path):
    train = train_node(model(), tmp_path / "model")
    r = request()
    r[PRED].roi = r[PRED].roi.grow((2, 2, 2), (2, 2, 2))
    with gp.build(source() + train, scheduler="sync") as p:
        with pytest.raises(gp.ArrayError, match=r"Train: the model's output for PRED"):
            p.request_batch(r)
