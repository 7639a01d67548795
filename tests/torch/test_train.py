"""Real torch on CPU: training, gradients, checkpoints and resuming, logs, errors."""

import os

import numpy as np
import pytest
import torch

import daskgp as gp
from daskgp.torch import checkpoint_name, latest_checkpoint

from .models import GRAD, PRED, RAW, TARGET, batched, model, mse, request, source


def train_node(m, basename, **kwargs):
    kwargs.setdefault("device", "cpu")
    return gp.torch.Train(
        m, loss=torch.nn.MSELoss(), optimizer=torch.optim.SGD(m.parameters(), lr=0.1,
                                                              momentum=0.5),
        inputs={0: RAW}, outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(basename), **kwargs)


def test_conv3d_loss_decreases_and_outputs_carry_the_requested_roi(tmp_path):
    train = train_node(model(), tmp_path / "model", save_every=1000)
    pipeline = (batched(source() + gp.RandomLocation())
                + gp.PreCache(cache_size=4, num_workers=2) + train)
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        batches = [p.request_batch(request()) for _ in range(40)]
    losses = [b.loss for b in batches]
    assert all(isinstance(loss, float) for loss in losses)
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:5]), losses
    last = batches[-1]
    assert [b.iteration for b in batches] == list(range(1, 41))
    assert last[PRED].spec.roi == request()[PRED].roi
    assert last[PRED].spec.voxel_size == gp.Coordinate(2, 1, 1)
    assert last[PRED].spec.interpolatable is False  # gunpowder's default for predictions
    assert last[PRED].data.shape == (2, 1, 8, 16, 16)  # the batch layout, nothing moved
    with torch.no_grad():
        direct = train.model(torch.from_numpy(last[RAW].data)).numpy()
    # the batch holds the prediction of the step, made before that step's update
    np.testing.assert_allclose(last[PRED].data, direct, atol=0.05)
    np.testing.assert_allclose(last[PRED].data, 3 * last[RAW].data - 1, atol=0.3)


def test_tensorboard_scalars_hold_the_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = train_node(model(), tmp_path / "model", log_dir=str(tmp_path / "log"), log_every=2)
    with gp.build(batched(source()) + train, scheduler="sync", seed=0) as p:
        losses = [p.request_batch(request()).loss for _ in range(6)]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "log"))
    events = EventAccumulator(str(tmp_path / "log"))
    events.Reload()
    scalars = events.Scalars("loss")
    assert [s.step for s in scalars] == [2, 4, 6]
    np.testing.assert_allclose([s.value for s in scalars], losses[1::2], rtol=1e-6)


def test_checkpoint_holds_model_and_optimizer_and_training_resumes(tmp_path):
    basename = tmp_path / "model"
    first = train_node(model(), basename, save_every=3)
    with gp.build(batched(source() + gp.RandomLocation()) + first, scheduler="sync",
                  seed=1) as p:
        for _ in range(7):
            p.request_batch(request())
    names = sorted(os.listdir(tmp_path))
    assert names == ["model_checkpoint_3", "model_checkpoint_6"], names
    saved = torch.load(checkpoint_name(str(basename), 6))
    assert set(saved) == {"model_state_dict", "optimizer_state_dict"}
    assert saved["optimizer_state_dict"]["state"], "momentum buffers are saved"
    assert latest_checkpoint(str(basename)) == (checkpoint_name(str(basename), 6), 6)

    second = train_node(model(seed=5), basename, save_every=3)
    with gp.build(batched(source() + gp.RandomLocation()) + second, scheduler="sync",
                  seed=1) as p:
        assert second.iteration == 6
        for name, value in saved["model_state_dict"].items():
            torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0)
        moments = second.optimizer.state_dict()["state"]
        for index, state in saved["optimizer_state_dict"]["state"].items():
            torch.testing.assert_close(moments[index]["momentum_buffer"],
                                       state["momentum_buffer"], rtol=0, atol=0)
        assert p.request_batch(request()).iteration == 7


def test_resuming_equals_training_without_a_break(tmp_path):
    """Train 4 + 4 iterations with a checkpoint in between, and 8 at once: same weights."""
    def run(basename, iterations, seed_offset):
        train = train_node(model(), basename, save_every=4)
        with gp.build(batched(source() + gp.RandomLocation()) + train, scheduler="sync",
                      seed=3) as p:
            for i in range(iterations):
                p.request_batch(request().in_sequence(3, seed_offset + i))
        return train.model.state_dict()

    run(tmp_path / "a" / "model", 4, 0)
    resumed = run(tmp_path / "a" / "model", 4, 4)
    straight = run(tmp_path / "b" / "model", 8, 0)
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0)


def test_gradients_of_outputs_by_position_and_by_submodule_name(tmp_path):
    features_grad = gp.ArrayKey("FEATURES_GRADIENT")
    m = model()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.SGD(m.parameters(), lr=0.0),
        inputs={"raw": RAW}, outputs={0: PRED}, loss_inputs={"prediction": PRED,
                                                            "target": TARGET},
        gradients={0: GRAD, "features": features_grad},
        checkpoint_basename=str(tmp_path / "model"), device="cpu")
    r = request()
    r.add(GRAD, (16, 16, 16))
    r.add(features_grad, (16, 16, 16))
    with gp.build(batched(source()) + train, scheduler="sync", seed=0) as p:
        batch = p.request_batch(r)
    pred, target = batch[PRED].data, batch[TARGET].data
    expected = 2 * (pred - target) / pred.size  # d/dpred of the mean squared error
    np.testing.assert_allclose(batch[GRAD].data, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(batch[features_grad].data, expected, rtol=1e-5, atol=1e-9)
    assert batch[GRAD].spec.roi == r[GRAD].roi


def test_outputs_by_submodule_name_and_loss_from_batch_arrays(tmp_path):
    features = gp.ArrayKey("FEATURES")
    m = model()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.SGD(m.parameters(), lr=0.0),
        inputs={0: RAW}, outputs={"features": features},
        loss_inputs={0: features, 1: TARGET}, checkpoint_basename=str(tmp_path / "model"),
        device="cpu")
    r = request(keys=(RAW, TARGET, features))
    with gp.build(batched(source()) + train, scheduler="sync", seed=0) as p:
        batch = p.request_batch(r)
    with torch.no_grad():
        direct = m(torch.from_numpy(batch[RAW].data)).numpy()
    np.testing.assert_allclose(batch[features].data, direct, rtol=1e-6)
    assert batch.loss == pytest.approx(float(np.mean((direct - batch[TARGET].data) ** 2)),
                                       rel=1e-5)


def test_spawn_subprocess_trains_in_a_child_and_saves_checkpoints(tmp_path):
    m = model()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
        inputs={0: RAW}, outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(tmp_path / "model"), save_every=5, spawn_subprocess=True,
        device="cpu")
    in_process = train_node(model(), tmp_path / "reference" / "model", save_every=5)
    in_process.optimizer = torch.optim.SGD(in_process.model.parameters(), lr=0.1)
    in_process.loss = mse
    results = {}
    for name, node in (("child", train), ("here", in_process)):
        with gp.build(batched(source() + gp.RandomLocation()) + node, scheduler="sync",
                      seed=2) as p:
            results[name] = [p.request_batch(request()) for _ in range(5)]
    child, here = results["child"], results["here"]
    assert [b.iteration for b in child] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([b.loss for b in child], [b.loss for b in here], rtol=1e-5)
    np.testing.assert_allclose(child[-1][PRED].data, here[-1][PRED].data, rtol=1e-5, atol=1e-6)
    saved = torch.load(tmp_path / "model_checkpoint_5")
    for name, value in in_process.model.state_dict().items():
        torch.testing.assert_close(saved["model_state_dict"][name], value)


def test_spawn_subprocess_needs_a_picklable_loss(tmp_path):
    m = model()
    train = gp.torch.Train(
        m, loss=lambda a, b: ((a - b) ** 2).mean(),
        optimizer=torch.optim.SGD(m.parameters(), lr=0.1), inputs={0: RAW},
        outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(tmp_path / "model"), spawn_subprocess=True, device="cpu")
    with pytest.raises(gp.PipelineSetupError, match="optimizer to pickle"):
        with gp.build(batched(source()) + train, scheduler="sync"):
            pass


def test_cuda_without_cuda_names_device_cpu(tmp_path):
    assert not torch.cuda.is_available()
    train = train_node(model(), tmp_path / "model", device="cuda")
    with pytest.raises(gp.PipelineSetupError, match=r'device="cuda".*pass device="cpu"'):
        with gp.build(batched(source()) + train, scheduler="sync"):
            pass


def test_missing_input_key_is_named(tmp_path):
    train = train_node(model(), tmp_path / "model")
    r = request()
    del r[RAW]
    with gp.build(batched(source()) + train, scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError, match="input RAW is not in the request"):
            p.request_batch(r)


def test_unknown_output_name_is_named(tmp_path):
    m = model()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), inputs={0: RAW},
        outputs={"logits": PRED}, loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(tmp_path / "model"), device="cpu")
    with gp.build(batched(source()) + train, scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError, match="no output 'logits' for PRED"):
            p.request_batch(request())


def test_output_shape_mismatch_is_named(tmp_path):
    train = train_node(model(), tmp_path / "model")
    r = request()
    r[PRED].roi = r[PRED].roi.grow((2, 2, 2), (2, 2, 2))
    with gp.build(batched(source()) + train, scheduler="sync") as p:
        with pytest.raises(gp.ArrayError, match=r"Train: the model's output for PRED"):
            p.request_batch(r)


def test_latest_checkpoint_is_the_highest_iteration_and_ignores_other_files(tmp_path):
    for name in ("model_checkpoint_9", "model_checkpoint_10", "model_checkpoint_11.bak",
                 ".model_checkpoint_12.partial", "model_checkpoint_best", "other_checkpoint_99"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(str(tmp_path / "model")) == (str(tmp_path / "model_checkpoint_10"),
                                                          10)
    assert latest_checkpoint(str(tmp_path / "none")) == (None, 0)


def test_gradient_of_an_output_the_loss_ignores_is_an_error(tmp_path):
    features = gp.ArrayKey("FEATURES")
    features_grad = gp.ArrayKey("FEATURES_GRADIENT")

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv3d(1, 1, 1), torch.nn.Conv3d(1, 1, 1)

        def forward(self, raw):
            return self.a(raw), self.b(raw)

    m = TwoHeads()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), inputs={0: RAW},
        outputs={0: PRED, 1: features}, loss_inputs={0: PRED, 1: TARGET},
        gradients={1: features_grad}, checkpoint_basename=str(tmp_path / "model"),
        device="cpu")
    r = request()
    r.add(features_grad, (16, 16, 16))
    with gp.build(batched(source()) + train, scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError, match="does not depend on the output given "
                                                        "for FEATURES_GRADIENT"):
            p.request_batch(r)
