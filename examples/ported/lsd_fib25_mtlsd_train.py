"""FIB-25 multi-task LSD training (LSDs and affinities) in the style of funkelab/lsd's mtlsd
example, built with daskgp and run with lsd's own ``AddLocalShapeDescriptor``.

Corresponds to ``lsd/tutorial/example_nets/fib25/mtlsd/train.py`` in funkelab/lsd. A
re-expression written for daskgp, not a copy: the facts carried over are the samples and
their probabilities, the keys, the request and the snapshot request, the user node
``UnmaskBackground`` (a ``BatchFilter`` whose ``process`` turns the float32 LSD scale into the
bool ``logical_or`` of itself and the inverted labels mask, in place), the resume logic
(``tf.train.latest_checkpoint('.')``), and the pipeline's nodes, their order and their
parameters: per sample ``ZarrSource`` + ``Normalize`` + ``Pad(raw, None)`` + two
``Pad(..., (608, 768, 768))`` + ``RandomLocation(min_masked=0.5, mask=labels_mask)``; then
``RandomProvider([0.05, 0.05, 0.45, 0.45])``, a rotation-only and a jittered
``ElasticAugment`` around ``SimpleAugment``, ``IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)``,
``GrowBoundary(labels, labels_mask, steps=1)``, ``AddLocalShapeDescriptor(labels, gt_lsds,
sigma=80, downsample=2)`` with its mask, ``UnmaskBackground``, ``AddAffinities``,
``BalanceLabels``, ``IntensityScaleShift(raw, 2, -1)``, ``PreCache(40, 20)``,
``tensorflow.Train(..., log_dir="log", save_every=10000)``, ``IntensityScaleShift(raw, 0.5,
0.5)``, ``Snapshot(..., dataset_dtypes={labels: uint64, gt_affs: float32}, every=1000,
output_filename="batch_{iteration}.hdf")``, ``PrintProfilingStats(every=10)``; the code and
comments are ours.

What still had to change, and why:

- imports: ``from daskgp import *`` and ``from daskgp.tensorflow import *`` (were gunpowder's),
  and ``daskgp.register_as_gunpowder()`` before ``from lsd.train.gp import
  AddLocalShapeDescriptor``: lsd's node imports gunpowder itself, so without gunpowder
  installed daskgp stands in for it; the node then runs unchanged (lsd 0.1.3 from PyPI, package
  ``lsds``; the ``malis`` import is dropped, the original never calls it, and so is its
  ``from __future__ import print_function``, which follows other imports there and is a
  SyntaxError in Python 3);
- lsd's keyword: ``mask=gt_lsds_scale`` is ``lsds_mask=gt_lsds_scale`` in lsd 0.1.3 (the
  original was written against an older lsd; gunpowder would need the same change);
- network: ``Train("train_net", optimizer=config["optimizer"], loss=config["loss"],
  inputs={tensor names: ...}, outputs=..., gradients=..., summary=config["summary"], ...)``
  becomes ``Train(keras.models.load_model("train_net.keras"), mtlsd_loss, optimizer(),
  inputs={0: raw}, outputs={"lsds": lsds, "affs": affs}, loss_inputs={...},
  gradients={"affs": affs_gradient}, checkpoint_basename="train_net", log_dir="log",
  save_every=...)``: daskgp's TensorFlow nodes are TF2/Keras (``lsd_fib25_mtlsd_mknet.py``);
  the loss casts the uint8 affinities and the bool LSD scale to float, as TF1's float32
  placeholders did;
- data paths: ``data_dir`` is an argument (was ``../../01_data/training``);
  ``write_synthetic_samples`` of the vanilla port writes FIB-25-like samples;
- run length: ``cache_size``/``num_workers``, ``save_every`` and ``snapshot_every`` are
  arguments (defaults are the original's), so a test of a few iterations stays short; the
  module-level ``logging.basicConfig(level=logging.INFO)`` runs under ``__main__`` only, so
  that importing the script (as the test does) leaves logging alone.

Run: ``python lsd_fib25_mtlsd_mknet.py && python lsd_fib25_mtlsd_train.py 100 --data DIR``,
or ``python lsd_fib25_mtlsd_train.py 10 --data synthetic --small`` on small synthetic data.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf

import daskgp
from daskgp import *  # noqa: F403
from daskgp.tensorflow import *  # noqa: F403

daskgp.register_as_gunpowder()
from cremi_mknet import optimizer  # noqa: E402
from lsd.train.gp import AddLocalShapeDescriptor  # noqa: E402
from lsd_fib25_mtlsd_mknet import mtlsd_loss  # noqa: E402

samples = ["trvol-250-1.zarr", "trvol-250-2.zarr", "tstvol-520-1.zarr", "tstvol-520-2.zarr"]
neighborhood = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
probabilities = [0.05, 0.05, 0.45, 0.45]  # in the order of the samples, small to large


class UnmaskBackground(BatchFilter):  # noqa: F405
    """Keep the LSD loss where raw is background: add the inverted labels mask to the LSD
    scale (after ``AddLocalShapeDescriptor`` masked the boundaries between neurons)."""

    def __init__(self, target_mask, background_mask):
        self.target_mask = target_mask
        self.background_mask = background_mask

    def process(self, batch, request):
        batch[self.target_mask].data = np.logical_or(
            batch[self.target_mask].data, np.logical_not(batch[self.background_mask].data))


def train_until(max_iteration: int, data_dir: str = "../../01_data/training",
                cache_size: int = 40, num_workers: int = 20, save_every: int = 10000,
                snapshot_every: int = 1000) -> Batch | None:  # noqa: F405
    """Train ``train_net`` up to ``max_iteration`` (resuming from the newest checkpoint in
    the working directory) and return the last batch."""
    latest = tf.train.latest_checkpoint(".")
    trained_until = int(latest.split("_")[-1]) if latest else 0
    if trained_until >= max_iteration:
        return None

    with open("train_net.json") as f:
        config = json.load(f)

    raw = ArrayKey("RAW")  # noqa: F405
    labels = ArrayKey("GT_LABELS")  # noqa: F405
    labels_mask = ArrayKey("GT_LABELS_MASK")  # noqa: F405
    lsds = ArrayKey("PREDICTED_LSDS")  # noqa: F405
    gt_lsds = ArrayKey("GT_LSDS")  # noqa: F405
    gt_lsds_scale = ArrayKey("GT_LSDS_SCALE")  # noqa: F405
    affs = ArrayKey("PREDICTED_AFFS")  # noqa: F405
    gt_affs = ArrayKey("GT_AFFS")  # noqa: F405
    gt_affs_scale = ArrayKey("GT_AFFS_SCALE")  # noqa: F405
    affs_gradient = ArrayKey("AFFS_GRADIENT")  # noqa: F405

    voxel_size = Coordinate((8, 8, 8))  # noqa: F405
    input_size = Coordinate(config["input_shape"]) * voxel_size  # noqa: F405
    output_size = Coordinate(config["output_shape"]) * voxel_size  # noqa: F405
    labels_padding = Coordinate((608, 768, 768))  # noqa: F405  # the most augmentation reaches

    request = BatchRequest()  # noqa: F405
    for key, size in [(raw, input_size), (labels, output_size), (labels_mask, output_size),
                      (gt_lsds, output_size), (gt_lsds_scale, output_size),
                      (gt_affs, output_size), (gt_affs_scale, output_size)]:
        request.add(key, size)
    snapshot_request = BatchRequest({  # noqa: F405
        lsds: request[gt_lsds], affs: request[gt_affs], affs_gradient: request[gt_affs]})

    data_sources = tuple(
        ZarrSource(  # noqa: F405
            os.path.join(data_dir, sample),
            datasets={raw: "volumes/raw", labels: "volumes/labels/neuron_ids",
                      labels_mask: "volumes/labels/mask"},
            array_specs={raw: ArraySpec(interpolatable=True),  # noqa: F405
                         labels: ArraySpec(interpolatable=False),  # noqa: F405
                         labels_mask: ArraySpec(interpolatable=False)})  # noqa: F405
        + Normalize(raw)  # noqa: F405
        + Pad(raw, None)  # noqa: F405
        + Pad(labels, labels_padding)  # noqa: F405
        + Pad(labels_mask, labels_padding)  # noqa: F405
        + RandomLocation(min_masked=0.5, mask=labels_mask)  # noqa: F405
        for sample in samples)

    train_pipeline = (
        data_sources
        + RandomProvider(probabilities=probabilities)  # noqa: F405
        + ElasticAugment(  # noqa: F405
            control_point_spacing=[40, 40, 40], jitter_sigma=[0, 0, 0],
            rotation_interval=[0, math.pi / 2.0], prob_slip=0, prob_shift=0,
            max_misalign=0, subsample=8)
        + SimpleAugment()  # noqa: F405
        + ElasticAugment(  # noqa: F405
            control_point_spacing=[40, 40, 40], jitter_sigma=[2, 2, 2],
            rotation_interval=[0, math.pi / 2.0], prob_slip=0.01, prob_shift=0.01,
            max_misalign=1, subsample=8)
        + IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)  # noqa: F405
        + GrowBoundary(labels, labels_mask, steps=1)  # noqa: F405
        + AddLocalShapeDescriptor(labels, gt_lsds, lsds_mask=gt_lsds_scale, sigma=80,
                                  downsample=2)
        + UnmaskBackground(gt_lsds_scale, labels_mask)
        + AddAffinities(neighborhood, labels=labels, affinities=gt_affs)  # noqa: F405
        + BalanceLabels(gt_affs, gt_affs_scale)  # noqa: F405
        + IntensityScaleShift(raw, 2, -1)  # noqa: F405
        + PreCache(cache_size=cache_size, num_workers=num_workers)  # noqa: F405
        + Train(  # noqa: F405
            keras.models.load_model("train_net.keras"), mtlsd_loss, optimizer(),
            inputs={0: raw}, outputs={"lsds": lsds, "affs": affs},
            loss_inputs={0: lsds, 1: gt_lsds, 2: gt_lsds_scale,
                         3: affs, 4: gt_affs, 5: gt_affs_scale},
            gradients={"affs": affs_gradient},
            checkpoint_basename="train_net", log_dir="log", save_every=save_every)
        + IntensityScaleShift(raw, 0.5, 0.5)  # noqa: F405
        + Snapshot(  # noqa: F405
            {raw: "volumes/raw", labels: "volumes/labels/neuron_ids",
             gt_lsds: "volumes/gt_lsds", lsds: "volumes/pred_lsds",
             gt_affs: "volumes/gt_affinities", affs: "volumes/pred_affinities",
             labels_mask: "volumes/labels/mask", affs_gradient: "volumes/affs_gradient"},
            dataset_dtypes={labels: np.uint64, gt_affs: np.float32},
            every=snapshot_every, output_filename="batch_{iteration}.hdf",
            additional_request=snapshot_request)
        + PrintProfilingStats(every=10)  # noqa: F405
    )

    print("Starting training...")
    last = None
    with build(train_pipeline) as b:  # noqa: F405
        for _ in range(max_iteration - trained_until):
            last = b.request_batch(request)
    print("Training finished")
    return last


SMALL_NET = dict(input_shape=(36, 36, 36), downsample_factors=[(2, 2, 2)])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iteration", type=int)
    parser.add_argument("--data", default="../../01_data/training")
    parser.add_argument("--small", action="store_true",
                        help="first write small synthetic samples into --data and a small "
                             "train_net into the working directory (what the test runs)")
    args = parser.parse_args()
    if args.small:
        from lsd_fib25_mtlsd_mknet import create_network
        from lsd_fib25_vanilla_train import write_synthetic_samples

        write_synthetic_samples(args.data, shape=(96, 96, 96))
        create_network(SMALL_NET["input_shape"], "train_net", SMALL_NET["downsample_factors"])
    train_until(args.iteration, args.data)
