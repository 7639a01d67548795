"""The pipelines of gunpowder's tutorial "A Simple Pipeline", built with daskgp.

Corresponds to ``docs/source/tutorial_simple_pipeline.rst`` in funkelab/gunpowder, up to
"Training a network" (torch training is covered by ``lsd_fib25_vanilla_train.py``). This file
is a re-expression written for daskgp, not a verbatim copy: the facts carried over are the
tutorial's nodes, their order and their parameter values; the code, names and comments are
ours.

What it shows about porting: every gunpowder name (``ArrayKey``, ``ZarrSource``, ``ArraySpec``,
``BatchRequest``, ``Roi``, ``RandomLocation``, ``SimpleAugment``, ``ElasticAugment``,
``Normalize``, ``IntensityAugment``, ``NoiseAugment``, ``Stack``, ``MergeProvider``, ``build``,
``request_batch``) is used unchanged through ``import daskgp as gp``. What still differs, all
outside the pipelines:

- data: the tutorial stores skimage's ``astronaut()`` (RGB, channels first) and a thresholded
  blur of it; skimage is not a daskgp dependency, so ``make_sample_data`` writes a synthetic
  image of the same layout and dtypes;
- display: matplotlib's ``imshow`` is replaced by ``show``, which prints shapes and ranges.

Run: python examples/ported/tutorial_simple_pipeline.py [--data DIR] [--size 256]
"""

from __future__ import annotations

import argparse
import functools
import math
import operator
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import zarr
from scipy import ndimage

import daskgp as gp

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GROUND_TRUTH")


def make_sample_data(path: Path, size: int) -> None:
    """Write a ``sample_data.zarr`` in the tutorial's layout.

    ``raw`` is (3, size, size) uint8, ``ground_truth`` is (1, size, size) float32 in {0, 1};
    both carry ``resolution`` (1, 1).

    Example:
        >>> make_sample_data(Path("/tmp/sample_data.zarr"), 128)  # doctest: +SKIP
    """
    rng = np.random.default_rng(1961923)
    blurred = ndimage.gaussian_filter(rng.random((3, size, size)), sigma=(0, 6, 6))
    image = (255 * (blurred - blurred.min()) / np.ptp(blurred)).astype(np.uint8)
    foreground = ndimage.gaussian_filter(image[0].astype(float) / 255, sigma=3.0) > 0.5
    store = zarr.open(str(path), mode="w")
    for name, values in (("raw", image),
                         ("ground_truth", foreground[np.newaxis].astype(np.float32))):
        store[name] = values
        store[name].attrs["resolution"] = (1, 1)


def show(title: str, *arrays: np.ndarray) -> None:
    """Print one line per batch: each array's shape, dtype and value range."""
    parts = (f"{a.shape} {a.dtype} [{a.min():.3g}, {a.max():.3g}]" for a in arrays)
    print(f"{title}: " + ", ".join(parts))


def chain(*nodes):
    """``nodes[0] + nodes[1] + ...``: a pipeline from its nodes, upstream first."""
    return functools.reduce(operator.add, nodes)


def ask(**rois: tuple[tuple[int, int], tuple[int, int]]) -> gp.BatchRequest:
    """A request from ``KEY_NAME=(offset, shape)`` pairs, e.g. ``ask(RAW=((0, 0), (64, 64)))``."""
    request = gp.BatchRequest()
    for name, (offset, shape) in rois.items():
        request[gp.ArrayKey(name)] = gp.Roi(offset, shape)
    return request


def zarr_source(container: str, datasets: dict) -> gp.ZarrSource:
    """A source for ``{key: (dataset, interpolatable)}`` in ``container``."""
    return gp.ZarrSource(
        container,
        {key: dataset for key, (dataset, _) in datasets.items()},
        {key: gp.ArraySpec(interpolatable=interp) for key, (_, interp) in datasets.items()},
    )


def tutorial_steps(container: str) -> Iterator[tuple[str, object, gp.BatchRequest]]:
    """The tutorial's steps in order, as ``(name, pipeline, request)``.

    Node objects are shared between steps, as in the tutorial, where each step extends the
    previous one; pipelines are built only when their step is reached.
    """
    raw_only = zarr_source(container, {RAW: ("raw", True)})
    shift = gp.RandomLocation()
    mirror_transpose = gp.SimpleAugment()
    warp = gp.ElasticAugment(control_point_spacing=(16, 16), jitter_sigma=(4.0, 4.0),
                             rotation_interval=(0, math.pi / 2))
    to_unit_range = gp.Normalize(RAW)
    intensity = gp.IntensityAugment(RAW, scale_min=0.8, scale_max=1.2,
                                    shift_min=-0.2, shift_max=0.2)
    noise = gp.NoiseAugment(RAW)
    augmentations = (to_unit_range, shift, mirror_transpose, warp, intensity, noise)
    square, wide = ((0, 0), (64, 64)), ((0, 0), (64, 128))

    # reading: a fixed ROI at the origin, then elsewhere, then at random places
    yield "minimal", raw_only, ask(RAW=square)
    yield "offset", raw_only, ask(RAW=((50, 150), (64, 64)))
    yield "random_location", chain(raw_only, shift), ask(RAW=((50, 150), (64, 64)))
    # augmenting: mirror/transpose, a non-square ROI, then a warp
    yield "simple_augment", chain(raw_only, shift, mirror_transpose), \
        ask(RAW=((50, 150), (64, 64)))
    yield "non_square", chain(raw_only, shift, mirror_transpose), ask(RAW=wide)
    yield "elastic_augment", chain(raw_only, shift, mirror_transpose, warp), ask(RAW=wide)
    yield "intensity", chain(raw_only, *augmentations), ask(RAW=wide)
    # batching five samples
    yield "stack", chain(raw_only, *augmentations, gp.Stack(5)), ask(RAW=wide)

    # raw and ground truth from one source, then from two merged sources
    both = zarr_source(container, {RAW: ("raw", True), GT: ("ground_truth", False)})
    stacked = chain(both, *augmentations, gp.Stack(5))
    yield "raw_and_gt", stacked, ask(RAW=wide, GROUND_TRUTH=wide)
    yield "offset_gt", stacked, ask(RAW=wide, GROUND_TRUTH=((20, 20), (64, 128)))
    merged = (zarr_source(container, {RAW: ("raw", True)}),
              zarr_source(container, {GT: ("ground_truth", False)})) + gp.MergeProvider()
    yield "merged_sources", chain(merged, *augmentations, gp.Stack(5)), \
        ask(RAW=wide, GROUND_TRUTH=wide)


def run(data: Path) -> dict[str, gp.Batch]:
    """Request one batch per tutorial step from ``data/sample_data.zarr``; ``{step: batch}``.

    Example:
        >>> batches = run(Path("/tmp"))  # doctest: +SKIP
        >>> batches["stack"][RAW].data.shape  # doctest: +SKIP
        (5, 3, 64, 128)
    """
    batches = {}
    for name, pipeline, request in tutorial_steps(str(data / "sample_data.zarr")):
        with gp.build(pipeline):
            batches[name] = pipeline.request_batch(request)
        show(name, *(array.data for array in batches[name].arrays.values()))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory for sample_data.zarr")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data or Path(scratch)
        make_sample_data(folder / "sample_data.zarr", args.size)
        run(folder)


if __name__ == "__main__":
    main()
