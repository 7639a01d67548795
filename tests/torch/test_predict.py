"""Real torch on CPU: Predict from Train's checkpoints, eval mode, outputs by name, errors."""

import numpy as np
import pytest
import torch

import daskgp as gp

from .models import PRED, RAW, TARGET, batched, model, mse, request, source


class DropoutConv(torch.nn.Module):
    """A ``Conv3d`` behind dropout: only eval mode makes its output deterministic."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.5)
        self.features = torch.nn.Conv3d(1, 2, 1)

    def forward(self, raw, scale):
        return {"prediction": self.features(self.dropout(raw)) * scale}


def trained_checkpoint(tmp_path) -> str:
    m = model()
    train = gp.torch.Train(
        m, loss=mse, optimizer=torch.optim.Adam(m.parameters(), lr=0.05), inputs={0: RAW},
        outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
        checkpoint_basename=str(tmp_path / "model"), save_every=5, device="cpu")
    with gp.build(batched(source() + gp.RandomLocation()) + train, scheduler="sync",
                  seed=0) as p:
        for _ in range(5):
            p.request_batch(request())
    return str(tmp_path / "model_checkpoint_5")


def test_predict_with_a_checkpoint_equals_the_model_applied_directly(tmp_path):
    checkpoint = trained_checkpoint(tmp_path)
    fresh = model(seed=7)
    predict = gp.torch.Predict(fresh, inputs={0: RAW}, outputs={0: PRED},
                               checkpoint=checkpoint, device="cpu")
    r = request(keys=(RAW, PRED))
    with gp.build(batched(source() + gp.RandomLocation()) + predict, scheduler="threads",
                  seed=4) as p:
        batch = p.request_batch(r)
    assert not fresh.training
    reference = model(seed=9)
    reference.load_state_dict(torch.load(checkpoint)["model_state_dict"])
    with torch.no_grad():
        direct = reference(torch.from_numpy(batch[RAW].data)).numpy()
    np.testing.assert_allclose(batch[PRED].data, direct, rtol=0, atol=1e-6)
    assert not np.allclose(batch[PRED].data, model(seed=7)(torch.from_numpy(
        batch[RAW].data)).detach().numpy()), "the checkpoint's weights, not the fresh ones"
    assert batch[PRED].spec.roi == r[PRED].roi
    assert batch[PRED].spec.voxel_size == gp.Coordinate(2, 1, 1)


def test_predict_eval_mode_no_grad_inputs_by_name_and_dict_outputs(tmp_path):
    scale = gp.ArrayKey("SCALE")
    torch.manual_seed(0)
    m = DropoutConv()
    torch.save(m.state_dict(), tmp_path / "bare_state_dict.pt")  # gunpowder loads these too
    torch.manual_seed(1)
    fresh = DropoutConv()
    scale_data = np.full((2, 1, 8, 16, 16), 2.0, np.float32)
    scale_source = gp.ArraySource(scale, scale_data, gp.ArraySpec(
        roi=gp.Roi((0, 0, 0), (16, 16, 16)), voxel_size=(2, 1, 1)))
    predict = gp.torch.Predict(fresh, inputs={"raw": RAW, "scale": scale},
                               outputs={"prediction": PRED},
                               checkpoint=str(tmp_path / "bare_state_dict.pt"), device="cpu")
    pipeline = (batched(source()), scale_source) + gp.MergeProvider() + predict
    r = request(keys=(RAW, PRED))
    r.add(scale, (16, 16, 16))
    with gp.build(pipeline, scheduler="sync", seed=0) as p:
        first, second = p.request_batch(r), p.request_batch(r)
    np.testing.assert_array_equal(first[PRED].data, second[PRED].data)
    m.eval()
    with torch.no_grad():
        direct = m(torch.from_numpy(first[RAW].data), 2.0)["prediction"].numpy()
    assert first[PRED].data.shape == (2, 2, 8, 16, 16)
    np.testing.assert_allclose(first[PRED].data, direct, rtol=0, atol=1e-6)


def test_missing_checkpoint_is_named(tmp_path):
    predict = gp.torch.Predict(model(), inputs={0: RAW}, outputs={0: PRED},
                               checkpoint=str(tmp_path / "nope_checkpoint_1"), device="cpu")
    with pytest.raises(gp.PipelineSetupError, match=r"nope_checkpoint_1.* does not exist"):
        with gp.build(batched(source()) + predict, scheduler="sync"):
            pass


def test_input_not_provided_upstream_is_named():
    other = gp.ArrayKey("OTHER")
    predict = gp.torch.Predict(model(), inputs={0: other}, outputs={0: PRED}, device="cpu")
    with pytest.raises(gp.PipelineSetupError, match="OTHER, which is not provided upstream"):
        with gp.build(batched(source()) + predict, scheduler="sync"):
            pass


def test_gaps_in_input_positions_are_an_error():
    predict = gp.torch.Predict(model(), inputs={1: RAW}, outputs={0: PRED}, device="cpu")
    with gp.build(batched(source()) + predict, scheduler="sync") as p:
        with pytest.raises(gp.PipelineSetupError, match=r"0, 1, 2, \.\.\. without gaps"):
            p.request_batch(request(keys=(RAW, PRED)))
