"""The seed's augmentation pipeline as a ``daskgp precompute`` pipeline file.

    daskgp sample sample.zarr
    daskgp precompute examples/precompute_pipeline.py --num-batches 8 --out batches.zarr --seed 1

Defines ``pipeline`` and ``request`` (the seed's: raw 84 x 268 x 268 around gt and mask
56 x 56 x 56). The volume is ``sample.zarr`` in the working folder, or ``$DASKGP_SAMPLE``.
Train on the stored batches with ``gp.PrecomputedSource("batches.zarr")``.
"""

import math
import os

import daskgp as gp

SAMPLE = os.environ.get("DASKGP_SAMPLE", "sample.zarr")
if not os.path.exists(SAMPLE):
    raise FileNotFoundError(f"{SAMPLE} does not exist: write it with `daskgp sample {SAMPLE}`")

raw, gt, gt_mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
source = gp.ZarrSource(SAMPLE, {raw: "volumes/raw", gt: "volumes/labels/neuron_ids",
                                gt_mask: "volumes/labels/mask"})

pipeline = (
    source
    + gp.Normalize(raw)
    + gp.RandomLocation()
    + gp.ElasticAugment(control_point_spacing=[4, 40, 40], jitter_sigma=[0, 2, 2],
                        rotation_interval=[0, math.pi / 2.0])
    + gp.SimpleAugment(transpose_only=[1, 2])
    + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
)

request = gp.BatchRequest()
request.add(raw, (84, 268, 268))
request.add(gt, (56, 56, 56))
request.add(gt_mask, (56, 56, 56))
