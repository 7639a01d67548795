"""The model, data and training settings shared by the gunpowder <-> daskgp torch checkpoint
fixtures (numpy and torch only: imported by gunpowder's Python 3.12 virtualenv too).

- ``daskgp_torch_checkpoint.py`` (daskgp) trains ``ITERATIONS`` steps and writes
  ``torch_checkpoints/daskgp/model_checkpoint_3``;
- ``gunpowder_torch_checkpoint.py`` (gunpowder 1.5.0) trains the same steps, writes
  ``torch_checkpoints/gunpowder/model_checkpoint_3``, resumes from it for ``RESUMED`` more steps
  (``gunpowder_resume.npz``: losses, iterations, final weights) and predicts with daskgp's
  checkpoint in ``gp.torch.Predict`` (``gunpowder_predict.npz``).

Run them in this order from the repository root (see each script's docstring).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent / "torch_checkpoints"
SHAPE = (8, 16, 16)
VOXEL_SIZE = (2, 1, 1)
ITERATIONS = 3
RESUMED = 2
LEARNING_RATE = 0.05


class Conv(torch.nn.Module):
    """A 3x3x3 ``Conv3d`` with two outputs, on (N, C, z, y, x) input; fixed initial weights."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv3d(1, 2, 3, padding=1)
        with torch.no_grad():
            values = torch.linspace(-0.5, 0.5, self.features.weight.numel())
            self.features.weight.copy_(values.reshape(self.features.weight.shape))
            self.features.bias.copy_(torch.tensor([0.1, -0.2]))

    def forward(self, raw):
        return self.features(raw)


def volumes() -> tuple[np.ndarray, np.ndarray]:
    """Raw (z, y, x) and a two-channel target, from formulas (no random generator)."""
    z, y, x = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    raw = np.sin(0.3 * z + 0.2 * y) * np.cos(0.15 * x)
    target = np.stack([raw > 0.2, raw < -0.3]).astype(np.float32)
    return raw.astype(np.float32), target


def optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam, so that the checkpoint carries optimizer state (moments, step counts)."""
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
