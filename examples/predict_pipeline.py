"""Boundary prediction with the U-Net of ``first_steps.py`` as a ``daskgp predict`` file.

    daskgp sample sample.zarr
    daskgp predict examples/predict_pipeline.py --out prediction.zarr --roi 30 120 120 40 160 160

Defines ``pipeline`` (the sample's raw, normalized, then ``gp.tensorflow.Predict``),
``request`` (one tile: raw with the network's context around its output) and ``outputs``.
The weights are the newest checkpoint that ``examples/first_steps.py`` wrote
(``runs/first_steps/model_checkpoint_*``, or ``$DASKGP_CHECKPOINT``); without one the network
is untrained (seeded), which still shows the job. The volume is ``sample.zarr`` in the
working folder, or ``$DASKGP_SAMPLE``. Drop ``--roi`` to predict the whole volume.
"""

import glob
import os
import re

import keras
import zarr
from first_steps import unet  # this file's folder is on sys.path when daskgp loads it

import daskgp as gp

SAMPLE = os.environ.get("DASKGP_SAMPLE", "sample.zarr")
RAW_SHAPE = (20, 64, 64)  # network input in voxels, as first_steps.py trains it
if not os.path.exists(SAMPLE):
    raise FileNotFoundError(f"{SAMPLE} does not exist: write it with `daskgp sample {SAMPLE}`")


def newest_checkpoint(basename: str = "runs/first_steps/model") -> str | None:
    """The prefix of the newest ``<basename>_checkpoint_<iteration>`` (None if there is none)."""
    found = {int(m.group(1)): path[: -len(".index")]
             for path in glob.glob(f"{glob.escape(basename)}_checkpoint_*.index")
             if (m := re.search(r"_checkpoint_(\d+)\.index$", path))}
    return found[max(found)] if found else None


checkpoint = os.environ.get("DASKGP_CHECKPOINT") or newest_checkpoint()
print(f"predict_pipeline: weights from {checkpoint or 'an untrained network (seed 0)'}")
keras.utils.set_random_seed(0)
model = unet(RAW_SHAPE)
output_shape = gp.Coordinate(model.output_shape[1:4])

raw, prediction = gp.ArrayKey("RAW"), gp.ArrayKey("PREDICTION")
stored = zarr.open_array(SAMPLE, path="volumes/raw", mode="r")
voxel_size = gp.Coordinate(stored.attrs.get("resolution", (1, 1, 1)))
volume = gp.Roi(stored.attrs.get("offset", (0, 0, 0)), gp.Coordinate(stored.shape) * voxel_size)
context = (gp.Coordinate(RAW_SHAPE) - output_shape) / 2 * voxel_size
# Where the network can predict: the volume less its context (so Scan and --roi know).
predicted = gp.ArraySpec(roi=volume.grow(-context, -context), voxel_size=voxel_size,
                         interpolatable=True)

source = gp.ZarrSource(SAMPLE, {raw: "volumes/raw"})
pipeline = (source + gp.Normalize(raw)
            + gp.tensorflow.Predict(model, inputs={0: raw}, outputs={0: prediction},
                                    array_specs={prediction: predicted}, checkpoint=checkpoint))

request = gp.BatchRequest()
request.add(raw, gp.Coordinate(RAW_SHAPE) * voxel_size)
request.add(prediction, output_shape * voxel_size)
outputs = {prediction: "volumes/prediction"}
