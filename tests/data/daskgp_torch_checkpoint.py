"""daskgp's side of the torch checkpoint fixtures: ``gp.torch.Train`` trains
``torch_fixture.Conv`` for ``ITERATIONS`` steps and writes
``torch_checkpoints/daskgp/model_checkpoint_3``, which ``gunpowder_torch_checkpoint.py`` then
loads into gunpowder's ``Predict``. Run it first, from the repository root:

    python tests/data/daskgp_torch_checkpoint.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import daskgp as gp
from tests.data.torch_fixture import (
    HERE,
    ITERATIONS,
    SHAPE,
    VOXEL_SIZE,
    Conv,
    optimizer,
    volumes,
)

RAW, TARGET, PRED = gp.ArrayKey("RAW"), gp.ArrayKey("TARGET"), gp.ArrayKey("PRED")


def source():
    """The fixture's raw and target as (1, C, z, y, x) arrays, as gunpowder's side has them."""
    raw, target = volumes()
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(SHAPE) * gp.Coordinate(VOXEL_SIZE)),
                        voxel_size=gp.Coordinate(VOXEL_SIZE), interpolatable=True)
    return ((gp.ArraySource(RAW, raw, spec.copy()), gp.ArraySource(TARGET, target, spec.copy()))
            + gp.MergeProvider() + gp.Unsqueeze([RAW]) + gp.Unsqueeze([RAW, TARGET]))


def request(keys) -> gp.BatchRequest:
    """``keys`` over the whole volume."""
    r = gp.BatchRequest()
    for key in keys:
        r.add(key, gp.Coordinate(SHAPE) * gp.Coordinate(VOXEL_SIZE))
    return r


def train_node(basename: Path, save_every: int) -> gp.torch.Train:
    """The fixture's training node, with a fresh model and optimizer."""
    model = Conv()
    return gp.torch.Train(model, torch.nn.MSELoss(), optimizer(model), inputs={0: RAW},
                          outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
                          checkpoint_basename=str(basename), save_every=save_every,
                          device="cpu")


def main() -> None:
    out = HERE / "daskgp"
    if out.exists():
        shutil.rmtree(out)
    with gp.build(source() + train_node(out / "model", ITERATIONS), scheduler="sync") as p:
        losses = [p.request_batch(request([RAW, TARGET, PRED])).loss for _ in range(ITERATIONS)]
    print("daskgp losses", losses, "->", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main()
