"""FIB-25 affinity training in the style of funkelab/lsd's vanilla example, built with daskgp.

Corresponds to ``lsd/tutorial/example_nets/fib25/vanilla/train_pytorch.py`` in funkelab/lsd.
This file is a re-expression written for daskgp, not a verbatim copy: the facts carried over
are the pipeline's nodes, their order and their parameter values (listed in ``train``); the
code, names, structure and comments are ours.

What it shows about porting: every gunpowder name the original uses (``ZarrSource``,
``Normalize``, ``Pad``, ``RandomLocation``, ``RandomProvider``, ``ElasticAugment``,
``SimpleAugment``, ``IntensityAugment``, ``GrowBoundary``, ``AddAffinities``,
``BalanceLabels``, ``IntensityScaleShift``, ``Unsqueeze``, ``PreCache``, torch ``Train``,
``Squeeze``, ``Snapshot``, ``PrintProfilingStats``) is daskgp's, unchanged, and the pipeline
needs no dtype declarations or channel handling beyond the original's. The original's star
imports (``from gunpowder import *``, ``from gunpowder.torch import *``) work as
``from daskgp import *`` / ``from daskgp.torch import *``; this script uses ``gp.`` names.
What still had to change, and why:

- network: ``funlib.learn.torch.models.UNet`` is not on PyPI, so ``ValidUNet`` stands in with
  its constructor (in_channels, num_fmaps, fmap_inc_factors, downsample_factors): two valid
  3x3x3 convolutions + ReLU per level, max-pooling, transposed-convolution upsampling,
  centre-cropped skip connections. funlib's translation-equivariant crop is replaced by a
  centre crop of the output to ``output_shape`` (its valid output for 196^3 is 92^3). The
  original's shapes (196^3 -> 84^3 voxels, downsampling (2, 2, 2), (2, 2, 2), (3, 3, 3)) are
  the defaults; the test trains a one-level net on 36^3 -> 20^3 voxels;
- device: ``device="cpu"`` where CUDA is missing (daskgp's default ``"cuda"`` is an error
  without CUDA, where gunpowder silently falls back to the CPU);
- data: the real volumes are a download, so ``write_synthetic_samples`` makes FIB-25-like
  samples in the original's dataset layout (blob neurons, a mask leaving an unlabelled border,
  raw darker at boundaries, 8 nm voxels);
- run length: ``cache_size``/``num_workers`` (40/10) and the snapshot interval (every batch)
  are arguments, so a test of a few iterations does not compute 40 batches ahead. ``log/``
  and ``snapshots/`` are written in the working directory, as in the original.

Run: python examples/ported/lsd_fib25_vanilla_train.py [--data DIR] [--iterations 100]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import zarr
from synthetic_volumes import em_raw, neuron_labels

import daskgp as gp
from daskgp.torch import Train

# sample names, smallest volumes first, and how often each is drawn
SAMPLE_WEIGHTS = {
    "trvol-250-1.zarr": 0.05,
    "trvol-250-2.zarr": 0.05,
    "tstvol-520-1.zarr": 0.45,
    "tstvol-520-2.zarr": 0.45,
}
NEIGHBOURS = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]  # one affinity per axis: z, y, x
VOXEL = gp.Coordinate((8, 8, 8))  # nm
LABEL_PADDING = gp.Coordinate((376, 536, 536))  # nm; the most any augmentation reaches out

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("GT_LABELS")
MASK = gp.ArrayKey("GT_LABELS_MASK")
PREDICTION = gp.ArrayKey("PREDICTED_AFFS")
TARGET = gp.ArrayKey("GT_AFFS")
WEIGHTS = gp.ArrayKey("GT_AFFS_SCALE")


class ValidUNet(torch.nn.Module):
    """Stand-in for funlib.learn.torch's ``UNet``: valid convolutions, so the output is
    smaller than the input; maps (b, in_channels, z, y, x) to (b, num_fmaps, z', y', x'),
    centre-cropped to ``output_shape`` if given.

    Example:
        >>> net = ValidUNet(1, 4, 2, [(2, 2, 2)])
        >>> tuple(net(torch.zeros(1, 1, 36, 36, 36)).shape)
        (1, 4, 20, 20, 20)
        >>> big = ValidUNet(1, 1, 1, [(2, 2, 2), (2, 2, 2), (3, 3, 3)], output_shape=(84,) * 3)
        >>> tuple(big(torch.zeros(1, 1, 196, 196, 196)).shape)
        (1, 1, 84, 84, 84)
    """

    def __init__(self, in_channels: int, num_fmaps: int, fmap_inc_factors: int,
                 downsample_factors: Sequence[tuple[int, int, int]],
                 output_shape: Sequence[int] | None = None):
        super().__init__()
        self.output_shape = None if output_shape is None else tuple(output_shape)
        widths = [num_fmaps * fmap_inc_factors ** depth
                  for depth in range(len(downsample_factors) + 1)]
        inputs = [in_channels, *widths[:-1]]
        self.encoders = torch.nn.ModuleList(
            _two_convs(a, b) for a, b in zip(inputs, widths, strict=True))
        self.pools = torch.nn.ModuleList(torch.nn.MaxPool3d(f) for f in downsample_factors)
        self.ups = torch.nn.ModuleList(
            torch.nn.ConvTranspose3d(deeper, deeper, f, stride=f)
            for deeper, f in zip(widths[1:], downsample_factors, strict=True))
        self.decoders = torch.nn.ModuleList(
            _two_convs(here + deeper, here)
            for here, deeper in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encode, pool in zip(self.encoders[:-1], self.pools, strict=True):
            x = encode(x)
            skips.append(x)
            x = pool(x)
        x = self.encoders[-1](x)
        for depth in reversed(range(len(self.decoders))):
            x = self.ups[depth](x)
            skip = _centre_crop(skips[depth], x.shape[2:])
            x = self.decoders[depth](torch.cat([skip, x], dim=1))
        if self.output_shape is not None:
            x = _centre_crop(x, self.output_shape)
        return x


def _two_convs(in_channels: int, out_channels: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv3d(in_channels, out_channels, 3), torch.nn.ReLU(),
        torch.nn.Conv3d(out_channels, out_channels, 3), torch.nn.ReLU())


def _centre_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    if any(have < want for have, want in zip(x.shape[2:], shape, strict=True)):
        raise ValueError(f"cannot crop a {tuple(x.shape[2:])} feature map to {tuple(shape)}: "
                         "the input is too small for this output shape")
    starts = [(have - want) // 2 for have, want in zip(x.shape[2:], shape, strict=True)]
    window = tuple(slice(s, s + n) for s, n in zip(starts, shape, strict=True))
    return x[(..., *window)]


class AffinityNet(torch.nn.Module):
    """A backbone followed by a 1x1x1 convolution to ``out_channels`` and a sigmoid."""

    def __init__(self, backbone: torch.nn.Module, in_channels: int, out_channels: int):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Sequential(
            torch.nn.Conv3d(in_channels, out_channels, (1, 1, 1)), torch.nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def sample_branch(path: str):
    """One sample: read, scale raw to [0, 1], pad, pick locations that are half labelled."""
    source = gp.ZarrSource(
        path,
        {RAW: "volumes/raw", LABELS: "volumes/labels/neuron_ids",
         MASK: "volumes/labels/mask"},
        {RAW: gp.ArraySpec(interpolatable=True), LABELS: gp.ArraySpec(interpolatable=False),
         MASK: gp.ArraySpec(interpolatable=False)})
    return (source + gp.Normalize(RAW) + gp.Pad(RAW, None) + gp.Pad(LABELS, LABEL_PADDING)
            + gp.Pad(MASK, LABEL_PADDING) + gp.RandomLocation(min_masked=0.5, mask=MASK))


def train(iterations: int, data_dir: str, *, samples: dict[str, float] = SAMPLE_WEIGHTS,
          input_shape: Sequence[int] = (196, 196, 196),
          output_shape: Sequence[int] = (84, 84, 84),
          downsample_factors: Sequence[Sequence[int]] = ((2, 2, 2), (2, 2, 2), (3, 3, 3)),
          cache_size: int = 40, num_workers: int = 10, snapshot_every: int = 1) -> gp.Batch:
    """Train for ``iterations`` batches and return the last one.

    Example:
        >>> write_synthetic_samples("data")  # doctest: +SKIP
        >>> batch = train(2, "data", input_shape=(36,) * 3, output_shape=(20,) * 3,
        ...               downsample_factors=[(2, 2, 2)], cache_size=2)  # doctest: +SKIP
    """
    # network and optimiser: 12 feature maps, x6 per level, 3 sigmoid affinity channels
    backbone = ValidUNet(1, 12, 6, [tuple(f) for f in downsample_factors],
                         output_shape=output_shape)
    model = AffinityNet(backbone, 12, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5e-4, betas=(0.95, 0.999))

    input_size = gp.Coordinate(input_shape) * VOXEL
    output_size = gp.Coordinate(output_shape) * VOXEL
    request = gp.BatchRequest()
    request.add(RAW, input_size)
    for key in (LABELS, MASK, TARGET, WEIGHTS):
        request.add(key, output_size)

    branches = tuple(sample_branch(str(Path(data_dir) / name)) for name in samples)
    pipeline = branches + gp.RandomProvider(probabilities=list(samples.values()))
    # augmentation: a rotation-only warp, mirrors/transposes, then a jittered warp with
    # rare slips and shifts of sections
    pipeline += gp.ElasticAugment(
        control_point_spacing=[40, 40, 40], jitter_sigma=[0, 0, 0],
        rotation_interval=[0, math.pi / 2.0], prob_slip=0, prob_shift=0, max_misalign=0,
        subsample=8)
    pipeline += gp.SimpleAugment()
    pipeline += gp.ElasticAugment(
        control_point_spacing=[40, 40, 40], jitter_sigma=[2, 2, 2],
        rotation_interval=[0, math.pi / 2.0], prob_slip=0.01, prob_shift=0.01,
        max_misalign=1, subsample=8)
    pipeline += gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)
    # targets: thicker boundaries, affinities, class-balancing weights
    pipeline += gp.GrowBoundary(LABELS, MASK, steps=1)
    pipeline += gp.AddAffinities(NEIGHBOURS, labels=LABELS, affinities=TARGET)
    pipeline += gp.BalanceLabels(TARGET, WEIGHTS)
    # network input in [-1, 1] with batch and channel axes; targets as floats
    pipeline += gp.IntensityScaleShift(RAW, 2, -1)
    pipeline += gp.Normalize(TARGET)
    pipeline += gp.Unsqueeze([RAW, TARGET])
    pipeline += gp.Unsqueeze([RAW])
    pipeline += gp.PreCache(cache_size=cache_size, num_workers=num_workers)
    pipeline += Train(
        model=model, loss=torch.nn.MSELoss(), optimizer=optimizer,
        inputs={"x": RAW}, loss_inputs={0: PREDICTION, 1: TARGET}, outputs={0: PREDICTION},
        save_every=1000, log_dir="log",
        device="cuda" if torch.cuda.is_available() else "cpu")
    # back to the stored layout and range, then snapshots and timings
    pipeline += gp.Squeeze([RAW])
    pipeline += gp.Squeeze([RAW, TARGET, PREDICTION])
    pipeline += gp.IntensityScaleShift(RAW, 0.5, 0.5)
    pipeline += gp.Snapshot(
        {RAW: "volumes/raw", LABELS: "volumes/labels/neuron_ids",
         TARGET: "volumes/gt_affinities", PREDICTION: "volumes/pred_affinities",
         MASK: "volumes/labels/mask"},
        dataset_dtypes={LABELS: np.uint64, TARGET: np.float32},
        every=snapshot_every, output_filename="batch_{iteration}.zarr",
        additional_request=gp.BatchRequest({PREDICTION: request[TARGET]}))
    pipeline += gp.PrintProfilingStats(every=1)

    last = None
    with gp.build(pipeline) as built:
        for _ in range(iterations):
            last = built.request_batch(request)
    return last


def write_synthetic_samples(data_dir: str | Path, shape: Sequence[int] = (96, 96, 96),
                            samples: Sequence[str] = tuple(SAMPLE_WEIGHTS),
                            seed: int = 25) -> None:
    """Write FIB-25-like samples: ``volumes/raw`` (uint8), ``volumes/labels/neuron_ids``
    (uint64 Voronoi blobs of 40 seeds), ``volumes/labels/mask`` (uint8, 0 on an 8-voxel
    border), all with resolution (8, 8, 8) and offset 0."""
    rng = np.random.default_rng(seed)
    for name in samples:
        neurons = neuron_labels(shape, 40, rng)
        raw = em_raw(neurons, rng)
        mask = np.zeros(shape, dtype=np.uint8)
        mask[8:-8, 8:-8, 8:-8] = 1
        store = zarr.open(str(Path(data_dir) / name), mode="w")
        for dataset, values in (("volumes/raw", raw), ("volumes/labels/neuron_ids", neurons),
                                ("volumes/labels/mask", mask)):
            store[dataset] = values
            store[dataset].attrs.update(resolution=(8, 8, 8), offset=(0, 0, 0))


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    torch.backends.cudnn.benchmark = True
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="directory with the four samples (default: synthetic)")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    data_dir = args.data
    if data_dir is None:
        data_dir = "lsd_fib25_synthetic"
        write_synthetic_samples(data_dir, shape=(256, 256, 256))
    train(args.iterations, data_dir)


if __name__ == "__main__":
    main()
