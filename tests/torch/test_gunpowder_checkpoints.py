"""Checkpoints cross between gunpowder 1.5.0's torch nodes and daskgp's, both ways.

The fixtures in ``tests/data/torch_checkpoints/`` were made by
``tests/data/daskgp_torch_checkpoint.py`` (daskgp) and then
``tests/data/gunpowder_torch_checkpoint.py`` (gunpowder 1.5.0 in its own virtualenv); see
``tests/data/torch_fixture.py``. Tolerances allow for another torch version in CI.
"""

import shutil

import numpy as np
import pytest
import torch

import daskgp as gp
from tests.data.daskgp_torch_checkpoint import PRED, RAW, TARGET, request, source, train_node
from tests.data.torch_fixture import HERE, ITERATIONS, RESUMED, Conv

GUNPOWDER_CHECKPOINT = HERE / "gunpowder" / f"model_checkpoint_{ITERATIONS}"
DASKGP_CHECKPOINT = HERE / "daskgp" / f"model_checkpoint_{ITERATIONS}"


def assert_states_close(state, expected):
    assert set(state) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6)


def test_gunpowder_checkpoint_resumes_in_daskgp(tmp_path):
    gunpowder = np.load(HERE / "gunpowder_resume.npz")
    shutil.copy(GUNPOWDER_CHECKPOINT, tmp_path / GUNPOWDER_CHECKPOINT.name)
    train = train_node(tmp_path / "model", save_every=ITERATIONS + RESUMED)
    with gp.build(source() + train, scheduler="sync") as p:
        assert train.iteration == ITERATIONS
        batches = [p.request_batch(request([RAW, TARGET, PRED])) for _ in range(RESUMED)]
    assert [b.iteration for b in batches] == list(gunpowder["iterations"]) == [4, 5]
    np.testing.assert_allclose([b.loss for b in batches], gunpowder["losses"], rtol=1e-5)
    np.testing.assert_allclose(batches[-1][PRED].data, gunpowder["last_prediction"],
                               rtol=1e-5, atol=1e-6)
    final = torch.load(tmp_path / f"model_checkpoint_{ITERATIONS + RESUMED}")
    assert_states_close(final["model_state_dict"],
                        {name[len("weight_"):]: torch.from_numpy(gunpowder[name])
                         for name in gunpowder.files if name.startswith("weight_")})


def test_daskgp_trains_and_saves_what_gunpowder_does(tmp_path):
    gunpowder = np.load(HERE / "gunpowder_resume.npz")
    with gp.build(source() + train_node(tmp_path / "model", ITERATIONS), scheduler="sync") as p:
        losses = [p.request_batch(request([RAW, TARGET, PRED])).loss for _ in range(ITERATIONS)]
    np.testing.assert_allclose(losses, gunpowder["first_losses"], rtol=1e-5)
    ours = torch.load(tmp_path / f"model_checkpoint_{ITERATIONS}")
    theirs = torch.load(GUNPOWDER_CHECKPOINT)
    assert set(ours) == set(theirs) == {"model_state_dict", "optimizer_state_dict"}
    assert_states_close(ours["model_state_dict"], theirs["model_state_dict"])
    assert ours["optimizer_state_dict"]["param_groups"] == theirs["optimizer_state_dict"][
        "param_groups"]
    for index, state in theirs["optimizer_state_dict"]["state"].items():
        assert_states_close(ours["optimizer_state_dict"]["state"][index], state)
    # the committed daskgp fixture is what daskgp writes today
    assert_states_close(torch.load(DASKGP_CHECKPOINT)["model_state_dict"],
                        ours["model_state_dict"])


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_daskgp_checkpoint_predicts_in_daskgp_as_in_gunpowder(scheduler):
    gunpowder = np.load(HERE / "gunpowder_predict.npz")
    predict = gp.torch.Predict(Conv(), inputs={0: RAW}, outputs={0: PRED},
                               checkpoint=str(DASKGP_CHECKPOINT), device="cpu")
    with gp.build(source() + predict, scheduler=scheduler) as p:
        batch = p.request_batch(request([RAW, PRED]))
    np.testing.assert_array_equal(batch[RAW].data, gunpowder["raw"])
    np.testing.assert_allclose(batch[PRED].data, gunpowder["prediction"], rtol=0, atol=1e-6)
    untrained = Conv()(torch.from_numpy(gunpowder["raw"])).detach().numpy()
    assert np.abs(untrained - gunpowder["prediction"]).max() > 0.01, "trained weights were used"
