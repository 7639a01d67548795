"""Affinity training on CREMI in the style of gunpowder's own example, built with daskgp.

Corresponds to ``examples/cremi/train.py`` in funkelab/gunpowder. A re-expression written for
daskgp, not a copy: the facts carried over are the keys, the requests (raw at the network's
input size; affinities and loss weights at its output size; predictions and gradients added
for snapshots), the pipeline's nodes, their order and their parameter values, and the files it
reads and writes (``train_net_config.json``, the three ``sample_?_padded_20160501.hdf``,
``snapshots/batch_{iteration}.hdf``); the code and comments are ours. Nodes, in order:
``Hdf5Source`` (``datasets=`` keyword, no array specs) + ``Normalize`` + ``RandomLocation`` per
sample, ``RandomProvider``, ``ElasticAugment([4, 40, 40], [0, 2, 2], [0, pi/2], prob_slip=0.05,
prob_shift=0.05, max_misalign=25)``, ``SimpleAugment(transpose_only=[1, 2])``,
``IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)``,
``GrowBoundary(labels, steps=3, only_xy=True)``, ``AddAffinities`` (-z, -y, -x),
``BalanceLabels``, ``PreCache(10, 5)``, ``tensorflow.Train(..., save_every=1)``,
``Snapshot(..., every=100, compression_type="gzip")``, ``PrintProfilingStats(every=10)``; the
loop calls ``request_batch`` on the pipeline object inside ``with gp.build(pipeline):``.

What still had to change, and why:

- import: ``import daskgp as gp`` (was ``import gunpowder as gp``);
- network: ``tensorflow.Train`` takes a Keras model, a loss function and an optimiser
  (daskgp's TensorFlow nodes are TF2/Keras; gunpowder's take a TF1 meta-graph name and tensor
  names from the config). ``Train("train_net", config["optimizer"], config["loss"],
  inputs={tensor names: raw, gt_affs, loss_weights}, outputs=..., gradients=...)`` becomes
  ``Train(keras.models.load_model("train_net.keras"), weighted_mse, optimizer(),
  inputs={0: raw}, outputs={0: pred_affs}, loss_inputs={0: gt_affs, 1: pred_affs,
  2: loss_weights}, gradients={0: pred_affs_gradients}, checkpoint_basename="train_net",
  save_every=1)``: in TF1 the targets and weights were graph inputs feeding the loss tensor,
  here they are the loss function's arguments. See ``cremi_mknet.py``;
- data paths: ``data_dir`` (default ``.``, as in the original) and ``write_synthetic_cremi``,
  which writes CREMI-like files in the original's layout (raw padded around the labelled
  block, as in the ``_padded_`` files; ``resolution`` (40, 4, 4) and ``offset`` attributes);
- run length: ``cache_size``/``num_workers`` and ``snapshot_every`` are arguments (defaults are
  the original's 10/5 and 100), so that a test of a few iterations does not compute ten
  batches ahead.

Nothing else: the gunpowder calls below are the original's. Run it as the original:
``python cremi_mknet.py && python cremi_train.py`` in a directory with the three samples, or
``python cremi_train.py 10 --small`` to write small synthetic samples and a small network
first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence

import h5py
import keras
import numpy as np
from cremi_mknet import optimizer, weighted_mse
from synthetic_volumes import em_raw, neuron_labels

import daskgp as gp

VOXEL_SIZE = (40, 4, 4)  # nm: CREMI's sections are 40 nm thick, 4 nm pixels


def train(iterations: int, data_dir: str = ".", cache_size: int = 10, num_workers: int = 5,
          snapshot_every: int = 100) -> None:
    """Train ``train_net`` for ``iterations`` batches (checkpoint after each)."""
    # keys
    raw = gp.ArrayKey("RAW")
    gt_labels = gp.ArrayKey("LABELS")
    gt_affs = gp.ArrayKey("AFFINITIES")
    loss_weights = gp.ArrayKey("LOSS_WEIGHTS")
    pred_affs = gp.ArrayKey("PRED_AFFS")
    pred_affs_gradients = gp.ArrayKey("PRED_AFFS_GRADIENTS")

    # requests, in world units
    with open("train_net_config.json") as f:
        net_config = json.load(f)
    voxel_size = gp.Coordinate((40, 4, 4))
    input_size = gp.Coordinate(net_config["input_shape"]) * voxel_size
    output_size = gp.Coordinate(net_config["output_shape"]) * voxel_size

    request = gp.BatchRequest()
    request.add(raw, input_size)
    request.add(gt_affs, output_size)
    request.add(loss_weights, output_size)

    snapshot_request = gp.BatchRequest()
    snapshot_request[pred_affs] = request[gt_affs]
    snapshot_request[pred_affs_gradients] = request[gt_affs]

    # pipeline: one branch per sample, then augmentation, targets, training, inspection
    pipeline = (
        tuple(
            gp.Hdf5Source(
                os.path.join(data_dir, "sample_" + s + "_padded_20160501.hdf"),
                datasets={raw: "volumes/raw", gt_labels: "volumes/labels/neuron_ids"})
            + gp.Normalize(raw)
            + gp.RandomLocation()
            for s in ["A", "B", "C"])
        + gp.RandomProvider()
        + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0],
                            prob_slip=0.05, prob_shift=0.05, max_misalign=25)
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(raw, scale_min=0.9, scale_max=1.1, shift_min=-0.1,
                              shift_max=0.1, z_section_wise=True)
        + gp.GrowBoundary(gt_labels, steps=3, only_xy=True)
        + gp.AddAffinities([[-1, 0, 0], [0, -1, 0], [0, 0, -1]], gt_labels, gt_affs)
        + gp.BalanceLabels(gt_affs, loss_weights)
        + gp.PreCache(cache_size=cache_size, num_workers=num_workers)
        + gp.tensorflow.Train(
            keras.models.load_model("train_net.keras"), weighted_mse, optimizer(),
            inputs={0: raw}, outputs={0: pred_affs},
            loss_inputs={0: gt_affs, 1: pred_affs, 2: loss_weights},
            gradients={0: pred_affs_gradients},
            checkpoint_basename="train_net", save_every=1)
        + gp.Snapshot(
            {raw: "/volumes/raw", gt_labels: "/volumes/labels/neuron_ids",
             gt_affs: "/volumes/labels/affs", pred_affs: "/volumes/pred_affs",
             pred_affs_gradients: "/volumes/pred_affs_gradients"},
            output_dir="snapshots", output_filename="batch_{iteration}.hdf",
            every=snapshot_every, additional_request=snapshot_request,
            compression_type="gzip")
        + gp.PrintProfilingStats(every=10)
    )

    print("Training for", iterations, "iterations")
    with gp.build(pipeline):
        for _ in range(iterations):
            pipeline.request_batch(request)
    print("Finished")


def write_synthetic_cremi(data_dir: str = ".", shape: Sequence[int] = (48, 100, 100),
                          padding: Sequence[int] = (4, 20, 20), seed: int = 2016) -> None:
    """Write ``sample_{A,B,C}_padded_20160501.hdf`` like CREMI's padded files: uint8
    ``volumes/raw`` of ``shape + 2 * padding`` voxels at offset 0, and uint64
    ``volumes/labels/neuron_ids`` of ``shape`` voxels at offset ``padding`` (in nm), both with
    ``resolution`` (40, 4, 4)."""
    rng = np.random.default_rng(seed)
    padded = tuple(s + 2 * p for s, p in zip(shape, padding, strict=True))
    for sample in "ABC":
        labels = neuron_labels(padded, 30, rng, anisotropy=VOXEL_SIZE)
        raw = em_raw(labels, rng)
        inner = tuple(slice(p, p + s) for p, s in zip(padding, shape, strict=True))
        path = os.path.join(data_dir, f"sample_{sample}_padded_20160501.hdf")
        with h5py.File(path, "w") as f:
            f["volumes/raw"] = raw
            f["volumes/labels/neuron_ids"] = labels[inner]
            f["volumes/raw"].attrs["resolution"] = VOXEL_SIZE
            f["volumes/raw"].attrs["offset"] = (0, 0, 0)
            f["volumes/labels/neuron_ids"].attrs["resolution"] = VOXEL_SIZE
            f["volumes/labels/neuron_ids"].attrs["offset"] = tuple(
                p * v for p, v in zip(padding, VOXEL_SIZE, strict=True))


SMALL_TRAIN_NET = dict(input_shape=(20, 52, 52), downsample_factors=[(1, 3, 3)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=200000)
    parser.add_argument("--small", action="store_true",
                        help="first write small synthetic samples and a small train_net into "
                             "the working directory (what the test runs)")
    args = parser.parse_args()
    if args.small:
        from cremi_mknet import create_network

        write_synthetic_cremi()
        create_network(SMALL_TRAIN_NET["input_shape"], "train_net",
                       SMALL_TRAIN_NET["downsample_factors"])
    train(args.iterations)
