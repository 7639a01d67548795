"""gunpowder's tutorial "A Simple Pipeline" (docs/source/tutorial_simple_pipeline.rst), ported.

Every pipeline of the tutorial, in its order, up to "Training a network" (whose torch
``Train`` is daskgp's torch work). Changes that were still needed, all outside the
pipelines:

1. ``import gunpowder as gp`` -> ``import daskgp as gp``.
2. Data: the tutorial stores skimage's ``astronaut()`` (RGB, channels first) and a thresholded
   Gaussian of it in ``sample_data.zarr``; skimage is not a daskgp dependency, so a synthetic
   RGB image of the same layout is made with numpy/scipy (``--size``), in ``--data``.
3. ``imshow`` (matplotlib) is replaced by printing each batch's shapes and value ranges.

Run: python examples/ported/tutorial_simple_pipeline.py [--data DIR] [--size 256]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import zarr
from scipy import ndimage

import daskgp as gp


def make_sample_data(path: Path, size: int) -> None:
    """The tutorial's sample_data.zarr: raw (3, size, size) uint8 and ground_truth
    (1, size, size) float32, both with resolution (1, 1)."""
    rng = np.random.default_rng(1961923)
    smooth = ndimage.gaussian_filter(rng.random((3, size, size)), sigma=(0, 6, 6))
    raw_data = (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
    gt_data = ndimage.gaussian_filter(raw_data[0].astype(float) / 255, sigma=3.0) > 0.5
    gt_data = gt_data[np.newaxis, :].astype(np.float32)
    f = zarr.open(str(path), mode="w")
    f["raw"] = raw_data
    f["raw"].attrs["resolution"] = (1, 1)
    f["ground_truth"] = gt_data
    f["ground_truth"].attrs["resolution"] = (1, 1)


def show(title: str, *arrays) -> None:
    print(title + ": " + ", ".join(
        f"{a.shape} {a.dtype} [{a.min():.3g}, {a.max():.3g}]" for a in arrays))


def run(data: Path) -> dict:
    """Every batch of the tutorial, by step name."""
    batches = {}
    sample = str(data / "sample_data.zarr")

    raw = gp.ArrayKey('RAW')
    source = gp.ZarrSource(
        sample,  # the zarr container
        {raw: 'raw'},  # which dataset to associate to the array key
        {raw: gp.ArraySpec(interpolatable=True)}  # meta-information
    )
    pipeline = source

    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (64, 64))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["minimal"] = batch

    request[raw] = gp.Roi((50, 150), (64, 64))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["offset"] = batch

    random_location = gp.RandomLocation()
    pipeline = source + random_location
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["random_location"] = batch

    simple_augment = gp.SimpleAugment()
    pipeline = source + random_location + simple_augment
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["simple_augment"] = batch

    request[raw] = gp.Roi((0, 0), (64, 128))
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["non_square"] = batch

    elastic_augment = gp.ElasticAugment(
        control_point_spacing=(16, 16),
        jitter_sigma=(4.0, 4.0),
        rotation_interval=(0, math.pi/2))
    pipeline = source + random_location + simple_augment + elastic_augment
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["elastic_augment"] = batch

    normalize = gp.Normalize(raw)
    intensity_augment = gp.IntensityAugment(
        raw,
        scale_min=0.8,
        scale_max=1.2,
        shift_min=-0.2,
        shift_max=0.2)
    noise_augment = gp.NoiseAugment(raw)
    pipeline = (
        source +
        normalize +
        random_location +
        simple_augment +
        elastic_augment +
        intensity_augment +
        noise_augment)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["intensity"] = batch

    stack = gp.Stack(5)
    pipeline = (
        source +
        normalize +
        random_location +
        simple_augment +
        elastic_augment +
        intensity_augment +
        noise_augment +
        stack)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["stack"] = batch

    gt = gp.ArrayKey('GROUND_TRUTH')
    source = gp.ZarrSource(
        sample,
        {
            raw: 'raw',
            gt: 'ground_truth'
        },
        {
            raw: gp.ArraySpec(interpolatable=True),
            gt: gp.ArraySpec(interpolatable=False)
        })
    request[gt] = gp.Roi((0, 0), (64, 128))
    pipeline = (
        source +
        normalize +
        random_location +
        simple_augment +
        elastic_augment +
        intensity_augment +
        noise_augment +
        stack)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["raw_and_gt"] = batch

    odd_request = request.copy()
    odd_request[gt] = gp.Roi((20, 20), (64, 128))
    with gp.build(pipeline):
        batch = pipeline.request_batch(odd_request)
    batches["offset_gt"] = batch

    source_raw = gp.ZarrSource(
        sample,
        {raw: 'raw'},
        {raw: gp.ArraySpec(interpolatable=True)}
    )
    source_gt = gp.ZarrSource(
        sample,
        {gt: 'ground_truth'},
        {gt: gp.ArraySpec(interpolatable=False)}
    )
    combined_source = (source_raw, source_gt) + gp.MergeProvider()
    pipeline = (
        combined_source +
        normalize +
        random_location +
        simple_augment +
        elastic_augment +
        intensity_augment +
        noise_augment +
        stack)
    with gp.build(pipeline):
        batch = pipeline.request_batch(request)
    batches["merged_sources"] = batch

    for name, batch in batches.items():
        show(name, *(array.data for array in batch.arrays.values()))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory for sample_data.zarr")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        make_sample_data(data / "sample_data.zarr", args.size)
        run(data)


if __name__ == "__main__":
    main()
