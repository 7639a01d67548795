"""``examples/first_steps_torch.py`` runs end to end on a small synthetic volume, writes
gunpowder-format checkpoints and snapshots, and resumes where it stopped."""

import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import first_steps_torch

    return first_steps_torch


def test_unet_output_shape_and_masked_loss(example):
    net = example.UNet()
    assert net.output_shape((20, 64, 64)) == (8, 48, 48)
    prediction = torch.tensor([[0.0, 1.0]])
    target = torch.tensor([[1.0, 1.0]])
    mask = torch.tensor([[1, 0]], dtype=torch.uint8)
    assert float(example.masked_mse(prediction, target, mask)) == pytest.approx(0.5)


def test_example_trains_saves_and_resumes(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    arguments = ["first_steps_torch.py", "--volume-shape", "30", "150", "150", "--out",
                 str(out), "--save-every", "1", "--snapshot-every", "2", "--num-workers", "1",
                 "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", [*arguments, "--iterations", "1"])
    example.main()
    assert sorted(p.name for p in out.glob("model_checkpoint_*")) == ["model_checkpoint_1"]
    saved = torch.load(out / "model_checkpoint_1")
    assert set(saved) == {"model_state_dict", "optimizer_state_dict"}
    assert [p.name for p in (out / "snapshots").glob("*.zarr")] == ["1.zarr"]
    monkeypatch.setattr(sys, "argv", [*arguments, "--iterations", "2"])
    example.main()  # resumes at iteration 1: one more iteration, one more checkpoint
    assert sorted(p.name for p in out.glob("model_checkpoint_*")) == ["model_checkpoint_1",
                                                                       "model_checkpoint_2"]
