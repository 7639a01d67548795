"""gunpowder 1.5.0's side of the torch checkpoint fixtures (run in its own virtualenv).

1. ``gp.torch.Train`` trains ``torch_fixture.Conv`` for ``ITERATIONS`` steps and writes
   ``torch_checkpoints/gunpowder/model_checkpoint_3`` (daskgp must resume from it);
2. a second ``Train`` (fresh model and optimizer) resumes from a copy of it in gunpowder itself
   for ``RESUMED`` more steps: ``gunpowder_resume.npz`` holds the first run's losses and the
   resumed run's iterations, losses, last prediction and final weights (what daskgp's training
   and resumed training must reproduce);
3. ``gp.torch.Predict`` loads daskgp's ``torch_checkpoints/daskgp/model_checkpoint_3``
   (written by ``daskgp_torch_checkpoint.py``, run first) and predicts on the fixture's raw:
   ``gunpowder_predict.npz``.

    python tests/data/daskgp_torch_checkpoint.py        # Python 3.11 with daskgp
    PYTHONPATH=. /work/venvs/gp15/bin/python tests/data/gunpowder_torch_checkpoint.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import gunpowder as gp
import numpy as np
import torch
from funlib.persistence import Array as PersistenceArray

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.torch_fixture import (
    HERE,
    ITERATIONS,
    RESUMED,
    SHAPE,
    VOXEL_SIZE,
    Conv,
    optimizer,
    volumes,
)

RAW, TARGET, PRED = gp.ArrayKey("RAW"), gp.ArrayKey("TARGET"), gp.ArrayKey("PRED")


def source():
    """The fixture's raw and target as (1, C, z, y, x) arrays (gunpowder 1.5's GPArraySource
    fails to import ``Batch``; funlib.persistence arrays are what its ArraySource takes)."""
    raw, target = volumes()
    return ((gp.ArraySource(RAW, PersistenceArray(raw, (0, 0, 0), VOXEL_SIZE), True),
             gp.ArraySource(TARGET, PersistenceArray(target, (0, 0, 0), VOXEL_SIZE), True))
            + gp.MergeProvider() + gp.Unsqueeze([RAW]) + gp.Unsqueeze([RAW, TARGET]))


def request(keys):
    r = gp.BatchRequest()
    for key in keys:
        r.add(key, gp.Coordinate(SHAPE) * gp.Coordinate(VOXEL_SIZE))
    return r


def main() -> None:
    out = HERE / "gunpowder"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    basename = out / "model"

    model = Conv()
    node = gp.torch.Train(model, torch.nn.MSELoss(), optimizer(model), inputs={0: RAW},
                          outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
                          checkpoint_basename=str(basename), save_every=ITERATIONS,
                          device="cpu")
    pipeline = source() + node
    with gp.build(pipeline):
        losses = [float(pipeline.request_batch(request([RAW, TARGET, PRED])).loss)
                  for _ in range(ITERATIONS)]
    print("gunpowder losses", losses)

    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(f"{basename}_checkpoint_{ITERATIONS}", scratch)
        model = Conv()
        resumed = gp.torch.Train(model, torch.nn.MSELoss(), optimizer(model), inputs={0: RAW},
                                 outputs={0: PRED}, loss_inputs={0: PRED, 1: TARGET},
                                 checkpoint_basename=str(Path(scratch) / "model"),
                                 save_every=ITERATIONS + RESUMED, device="cpu")
        pipeline = source() + resumed
        with gp.build(pipeline):
            batches = [pipeline.request_batch(request([RAW, TARGET, PRED]))
                       for _ in range(RESUMED)]
        final = torch.load(Path(scratch) / f"model_checkpoint_{ITERATIONS + RESUMED}")
    state = final["model_state_dict"]
    np.savez(HERE / "gunpowder_resume.npz",
             first_losses=np.array(losses),
             iterations=np.array([b.iteration for b in batches]),
             losses=np.array([float(b.loss) for b in batches]),
             last_prediction=batches[-1][PRED].data,
             **{f"weight_{name}": value.numpy() for name, value in state.items()})
    print("gunpowder resumed iterations", [b.iteration for b in batches])

    model = Conv()
    model.eval()
    predict = gp.torch.Predict(model, inputs={0: RAW}, outputs={0: PRED},
                               checkpoint=str(HERE / "daskgp" / f"model_checkpoint_{ITERATIONS}"),
                               device="cpu")
    pipeline = source() + predict
    with gp.build(pipeline):
        batch = pipeline.request_batch(request([RAW, PRED]))
    np.savez(HERE / "gunpowder_predict.npz", raw=batch[RAW].data, prediction=batch[PRED].data)
    print("gunpowder prediction", batch[PRED].data.shape, float(batch[PRED].data.mean()))


if __name__ == "__main__":
    main()
