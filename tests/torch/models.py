"""Tiny torch models and data for the torch tests (module level, so they pickle for
``spawn_subprocess`` and spawned loader workers)."""

from __future__ import annotations

import numpy as np
import torch

import daskgp as gp
from tests.helpers import array_source

RAW = gp.ArrayKey("RAW")
TARGET = gp.ArrayKey("TARGET")
PRED = gp.ArrayKey("PRED")
GRAD = gp.ArrayKey("PRED_GRADIENT")
SHAPE = (8, 16, 16)


class Conv(torch.nn.Module):
    """One 1x1x1 ``Conv3d``: learns ``target = 3 * raw - 1``; ``features`` names a submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv3d(1, 1, 1)

    def forward(self, raw):
        return self.features(raw)


def model(seed: int = 1) -> Conv:
    """A ``Conv`` with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return Conv()


def volumes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw (24, 48, 48) noise and its target ``3 * raw - 1``."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(24, 48, 48)).astype(np.float32)
    return raw, (3.0 * raw - 1.0).astype(np.float32)


def source(voxel_size=(2, 1, 1)):
    """RAW and TARGET over the same volume."""
    raw, target = volumes()
    return (array_source(RAW, raw, voxel_size=voxel_size),
            array_source(TARGET, target, voxel_size=voxel_size)) + gp.MergeProvider()


def batched(pipeline, batch_size: int = 2):
    """``pipeline`` with channel and batch axes added, as gunpowder users do."""
    return pipeline + gp.Unsqueeze([RAW, TARGET]) + gp.Stack(batch_size)


def request(keys=(RAW, TARGET, PRED), voxel_size=(2, 1, 1)) -> gp.BatchRequest:
    """``keys`` at ``SHAPE`` voxels, all on the same ROI."""
    r = gp.BatchRequest()
    for key in keys:
        r.add(key, gp.Coordinate(SHAPE) * gp.Coordinate(voxel_size))
    return r


def mse(prediction, target):
    """Mean squared error (a module-level function, so it pickles)."""
    return torch.mean((prediction - target) ** 2)
