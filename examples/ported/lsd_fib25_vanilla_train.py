"""funkelab/lsd's affinity training for FIB-25 (``lsd/tutorial/example_nets/fib25/vanilla/
train_pytorch.py``), ported to daskgp.

The pipeline (sources, ``Normalize``/``Pad``/``RandomLocation`` per sample,
``RandomProvider``, two ``ElasticAugment``, ``SimpleAugment``, ``IntensityAugment``,
``GrowBoundary``, ``AddAffinities``, ``BalanceLabels``, ``IntensityScaleShift``, ``Normalize``,
``Unsqueeze``, ``PreCache``, torch ``Train``, ``Squeeze``, ``Snapshot``,
``PrintProfilingStats``) has the original's nodes in its order, with its arguments; it uses
gunpowder's star imports, as the original does. Changes that were still needed:

1. Imports: ``from gunpowder import *`` / ``from gunpowder.torch import *`` ->
   ``from daskgp import *`` / ``from daskgp.torch import *``; the original's
   ``from gunpowder.ext import torch`` (which undoes the star import's ``torch`` name) is a
   plain ``import torch`` after the star imports (daskgp has no ``ext`` module).
2. Data paths: ``data_dir`` and the four sample names are arguments; ``make_samples`` writes
   synthetic FIB-25-like samples (blob neurons as ``volumes/labels/neuron_ids``, a mask that
   leaves a border unlabelled, raw darker at boundaries; resolution 8 nm) in the original's
   dataset layout, since the real data (``../../01_data/training``) is a download.
3. ``funlib.learn.torch.models.UNet`` is not installable from PyPI: ``UNet`` below is a
   stand-in with its constructor (in_channels, num_fmaps, fmap_inc_factors,
   downsample_factors): two valid 3x3x3 convolutions + ReLU per level, max-pooling,
   transposed-convolution upsampling, cropped skip connections (no funlib-style crop to
   translation-equivariant sizes). The original's shapes (196^3 -> 84^3 voxels, downsample
   (2, 2, 2), (2, 2, 2), (3, 3, 3)) are the defaults; the test trains a one-level net on
   36^3 -> 20^3 voxels on CPU.
4. ``Train(..., device=...)``: daskgp's default ``"cuda"`` is an error without CUDA
   (gunpowder falls back to the CPU silently), so the device is ``"cpu"`` where CUDA is not
   available.
5. ``PreCache(cache_size=40, num_workers=10)`` and ``Snapshot(every=1)`` are arguments
   (the original's values are the defaults) so that a test of a few iterations does not
   compute 40 batches ahead; ``log`` and ``snapshots`` are written in the working directory,
   as in the original.

No change was needed in the pipeline itself (no dtype declarations, no channel handling, no
node arguments).

Run: python examples/ported/lsd_fib25_vanilla_train.py [--data DIR] [--iterations 100]
"""
# The original's star imports are kept on purpose, and torch is imported after them.
# ruff: noqa: F403, F405, I001

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

import numpy as np
import zarr
from scipy import ndimage

from daskgp import *
from daskgp.torch import *

import torch  # after the star imports, as the original's gunpowder.ext import (change 1)

SAMPLES = [
    "trvol-250-1.zarr",
    "trvol-250-2.zarr",
    "tstvol-520-1.zarr",
    "tstvol-520-2.zarr",
]
neighborhood = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
# needs to match order of samples (small to large)
probabilities = [0.05, 0.05, 0.45, 0.45]


class UNet(torch.nn.Module):
    """Stand-in for funlib.learn.torch's ``UNet`` (change 3): a valid-convolution U-Net with
    its constructor; ``forward`` maps (b, in_channels, z, y, x) to (b, num_fmaps, z', y', x')."""

    def __init__(self, in_channels, num_fmaps, fmap_inc_factors, downsample_factors):
        super().__init__()
        levels = len(downsample_factors) + 1
        fmaps = [num_fmaps * fmap_inc_factors ** level for level in range(levels)]
        self.down = torch.nn.ModuleList(
            _conv_pass(in_channels if level == 0 else fmaps[level - 1], fmaps[level])
            for level in range(levels))
        self.pool = torch.nn.ModuleList(torch.nn.MaxPool3d(f) for f in downsample_factors)
        self.upsample = torch.nn.ModuleList(
            torch.nn.ConvTranspose3d(fmaps[level + 1], fmaps[level + 1], f, stride=f)
            for level, f in enumerate(downsample_factors))
        self.up = torch.nn.ModuleList(
            _conv_pass(fmaps[level] + fmaps[level + 1], fmaps[level])
            for level in range(levels - 1))

    def forward(self, x):
        skips = []
        for level, conv_pass in enumerate(self.down):
            x = conv_pass(x)
            if level < len(self.pool):
                skips.append(x)
                x = self.pool[level](x)
        for level in reversed(range(len(self.up))):
            x = self.upsample[level](x)
            x = self.up[level](torch.cat([_crop(skips[level], x.shape[2:]), x], dim=1))
        return x


def _conv_pass(in_channels, out_channels):
    return torch.nn.Sequential(
        torch.nn.Conv3d(in_channels, out_channels, 3), torch.nn.ReLU(),
        torch.nn.Conv3d(out_channels, out_channels, 3), torch.nn.ReLU())


def _crop(x, shape):
    offset = [(a - b) // 2 for a, b in zip(x.shape[2:], shape, strict=True)]
    return x[(slice(None), slice(None), *(slice(o, o + s) for o, s in zip(offset, shape,
                                                                          strict=True)))]


class Convolve(torch.nn.Module):

    def __init__(
            self,
            model,
            in_channels,
            out_channels,
            kernel_size=(1, 1, 1)):

        super().__init__()

        self.model = model
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size

        conv = torch.nn.Conv3d

        self.conv_pass = torch.nn.Sequential(
                            conv(
                                self.in_channels,
                                self.out_channels,
                                self.kernel_size),
                            torch.nn.Sigmoid())

    def forward(self, x):

        y = self.model.forward(x)

        return self.conv_pass(y)


def train_until(max_iteration, data_dir, samples=SAMPLES,
                test_input_shape=(196,) * 3, test_output_shape=(84,) * 3,
                downsample_factors=((2, 2, 2), (2, 2, 2), (3, 3, 3)),
                cache_size=40, num_workers=10, snapshot_every=1):
    """Train for ``max_iteration`` batches; returns the last batch (change 5)."""

    in_channels = 1
    num_fmaps = 12
    fmap_inc_factors = 6
    downsample_factors = [tuple(f) for f in downsample_factors]

    unet = UNet(
            in_channels,
            num_fmaps,
            fmap_inc_factors,
            downsample_factors)

    model = Convolve(unet, num_fmaps, 3)

    loss = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(
            model.parameters(),
            lr=0.5e-4,
            betas=(0.95, 0.999))

    test_input_shape = Coordinate(test_input_shape)
    test_output_shape = Coordinate(test_output_shape)

    raw = ArrayKey('RAW')
    labels = ArrayKey('GT_LABELS')
    labels_mask = ArrayKey('GT_LABELS_MASK')
    affs = ArrayKey('PREDICTED_AFFS')
    gt_affs = ArrayKey('GT_AFFS')
    gt_affs_scale = ArrayKey('GT_AFFS_SCALE')

    voxel_size = Coordinate((8,) * 3)
    input_size = Coordinate(test_input_shape) * voxel_size
    output_size = Coordinate(test_output_shape) * voxel_size

    # max labels padding calculated
    labels_padding = Coordinate((376, 536, 536))

    request = BatchRequest()
    request.add(raw, input_size)
    request.add(labels, output_size)
    request.add(labels_mask, output_size)
    request.add(gt_affs, output_size)
    request.add(gt_affs_scale, output_size)

    snapshot_request = BatchRequest({
        affs: request[gt_affs]
    })

    data_sources = tuple(
            ZarrSource(
                    os.path.join(data_dir, sample),
                    {
                        raw: 'volumes/raw',
                        labels: 'volumes/labels/neuron_ids',
                        labels_mask: 'volumes/labels/mask',
                    },
                    {
                        raw: ArraySpec(interpolatable=True),
                        labels: ArraySpec(interpolatable=False),
                        labels_mask: ArraySpec(interpolatable=False)
                    }
                ) +
            Normalize(raw) +
            Pad(raw, None) +
            Pad(labels, labels_padding) +
            Pad(labels_mask, labels_padding) +
            RandomLocation(min_masked=0.5, mask=labels_mask)
            for sample in samples
        )

    train_pipeline = data_sources

    train_pipeline += RandomProvider(probabilities=probabilities)

    train_pipeline += ElasticAugment(
            control_point_spacing=[40, 40, 40],
            jitter_sigma=[0, 0, 0],
            rotation_interval=[0, math.pi / 2.0],
            prob_slip=0,
            prob_shift=0,
            max_misalign=0,
            subsample=8)

    train_pipeline += SimpleAugment()

    train_pipeline += ElasticAugment(
            control_point_spacing=[40, 40, 40],
            jitter_sigma=[2, 2, 2],
            rotation_interval=[0, math.pi / 2.0],
            prob_slip=0.01,
            prob_shift=0.01,
            max_misalign=1,
            subsample=8)

    train_pipeline += IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)

    train_pipeline += GrowBoundary(labels, labels_mask, steps=1)

    train_pipeline += AddAffinities(
            neighborhood,
            labels=labels,
            affinities=gt_affs)

    train_pipeline += BalanceLabels(
            gt_affs,
            gt_affs_scale)

    train_pipeline += IntensityScaleShift(raw, 2, -1)

    train_pipeline += Normalize(gt_affs)

    train_pipeline += Unsqueeze([raw, gt_affs])
    train_pipeline += Unsqueeze([raw])

    train_pipeline += PreCache(
            cache_size=cache_size,
            num_workers=num_workers)

    train_pipeline += Train(
            model=model,
            loss=loss,
            optimizer=optimizer,
            inputs={
                'x': raw
            },
            loss_inputs={
                0: affs,
                1: gt_affs
            },
            outputs={
                0: affs
            },
            save_every=1000,
            log_dir='log',
            device="cuda" if torch.cuda.is_available() else "cpu")  # change 4

    train_pipeline += Squeeze([raw])
    train_pipeline += Squeeze([raw, gt_affs, affs])

    train_pipeline += IntensityScaleShift(raw, 0.5, 0.5)

    train_pipeline += Snapshot({
                raw: 'volumes/raw',
                labels: 'volumes/labels/neuron_ids',
                gt_affs: 'volumes/gt_affinities',
                affs: 'volumes/pred_affinities',
                labels_mask: 'volumes/labels/mask'
            },
            dataset_dtypes={
                labels: np.uint64,
                gt_affs: np.float32
            },
            every=snapshot_every,
            output_filename='batch_{iteration}.zarr',
            additional_request=snapshot_request)

    train_pipeline += PrintProfilingStats(every=1)

    batch = None
    with build(train_pipeline) as b:
        for _ in range(max_iteration):
            batch = b.request_batch(request)
    return batch


def make_samples(data_dir, shape=(96, 96, 96), samples=SAMPLES, seed=25):
    """Synthetic samples in the original's layout (change 2): ``volumes/raw`` (uint8),
    ``volumes/labels/neuron_ids`` (uint64 blobs), ``volumes/labels/mask`` (uint8, 0 on a
    border of 8 voxels), all with resolution (8, 8, 8) nm."""
    rng = np.random.default_rng(seed)
    for sample in samples:
        seeds = np.zeros(shape, dtype=np.uint64)
        points = rng.integers(0, shape, size=(40, 3))
        seeds[tuple(points.T)] = np.arange(1, len(points) + 1, dtype=np.uint64)
        _, nearest = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        neuron_ids = seeds[tuple(nearest)]
        boundary = ndimage.morphological_gradient(neuron_ids.astype(np.int64), size=2) > 0
        smooth = ndimage.gaussian_filter(rng.random(shape), 1.0)
        raw = np.clip(160 + 400 * (smooth - 0.5) - 100 * boundary, 0, 255).astype(np.uint8)
        mask = np.zeros(shape, dtype=np.uint8)
        mask[8:-8, 8:-8, 8:-8] = 1
        container = zarr.open(str(Path(data_dir) / sample), mode="w")
        for name, data in (("volumes/raw", raw), ("volumes/labels/neuron_ids", neuron_ids),
                           ("volumes/labels/mask", mask)):
            container[name] = data
            container[name].attrs["resolution"] = (8, 8, 8)
            container[name].attrs["offset"] = (0, 0, 0)


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO)
    torch.backends.cudnn.benchmark = True
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="directory with the four samples (default: synthetic ones)")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    data_dir = args.data
    if data_dir is None:
        data_dir = "lsd_fib25_synthetic"
        make_samples(data_dir, shape=(256, 256, 256))
    train_until(args.iterations, data_dir)
