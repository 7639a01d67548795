"""The user nodes and pipelines of gunpowder's tutorial "Writing Your Own Node", in daskgp.

Corresponds to ``docs/source/tutorial_batch_provider.rst`` in funkelab/gunpowder. This file is
a re-expression written for daskgp, not a verbatim copy: the facts carried over are the kinds
of user node the tutorial teaches (a filter that only reports, one that changes its array in
place, a smoothing filter without and with upstream context, one that returns a new batch
holding a new array), the pipelines they sit in, their order and parameter values; the code,
names and comments are ours.

What it shows about porting: user nodes subclass ``gp.BatchFilter`` and use ``setup`` /
``provides``, ``prepare`` returning a ``BatchRequest`` (or nothing), ``process`` changing the
batch or returning a new ``Batch``, ``Array.crop``, ``Roi.grow`` and ``Coordinate`` exactly as
in gunpowder; daskgp runs them as numpy nodes. What still differs:

- image operations: the tutorial calls skimage (not a daskgp dependency); here inversion is
  ``1 - x`` (what skimage's ``invert`` gives for floats in [0, 1]) and smoothing is
  ``scipy.ndimage.gaussian_filter`` with ``mode="nearest"`` (skimage's ``gaussian`` default);
- data: a synthetic image from ``tutorial_simple_pipeline.make_sample_data`` replaces
  skimage's ``astronaut()``;
- display: ``imshow`` is replaced by printing shapes; the reporting node's output is kept.

Run: python examples/ported/tutorial_batch_provider.py [--size 384]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scipy import ndimage

import daskgp as gp

sys.path.insert(0, str(Path(__file__).parent))
from tutorial_simple_pipeline import RAW, ask, chain, make_sample_data, show, zarr_source

INVERTED = gp.ArrayKey("INVERTED_RAW")
SIGMA = 5.0


class Report(gp.BatchFilter):
    """Prints every request passing upstream and every batch passing downstream.

    Example:
        >>> pipeline = source + Report("after source") + gp.RandomLocation()  # doctest: +SKIP
    """

    def __init__(self, tag: str):
        self.tag = tag

    def prepare(self, request):
        print(f"{self.tag}\tupstream request: {request}")

    def process(self, batch, request):
        print(f"{self.tag}\tdownstream batch: {batch}")


class FlipInPlace(gp.BatchFilter):
    """Replaces ``key``'s intensities x (in [0, 1]) by 1 - x in the batch it is handed."""

    def __init__(self, key: gp.ArrayKey):
        self.key = key

    def process(self, batch, request):
        array = batch[self.key]
        array.data = 1 - array.data


def _blur(values, sigma, **options):
    """skimage-style Gaussian smoothing (edges repeat the nearest value)."""
    return ndimage.gaussian_filter(values, sigma=sigma, mode="nearest", **options)


class BlurWithoutContext(gp.BatchFilter):
    """Smooths only what was requested: values near the ROI's border see a repeated edge
    instead of the image beyond it, so neighbouring requests do not line up."""

    def __init__(self, key: gp.ArrayKey, sigma: float):
        self.key = key
        self.sigma = sigma

    def process(self, batch, request):
        batch[self.key].data = _blur(batch[self.key].data, self.sigma)


class BlurWithContext(gp.BatchFilter):
    """Smooths with the image around the request: ``prepare`` asks upstream for the ROI grown
    by the kernel's reach (``truncate`` sigmas on each side), ``process`` filters it and cuts
    it back to the requested ROI, so results equal the whole image's filter, cropped."""

    truncate = 4

    def __init__(self, key: gp.ArrayKey, sigma: float):
        self.key = key
        self.sigma = sigma

    def prepare(self, request):
        roi = request[self.key].roi
        reach = gp.Coordinate((self.truncate,) * roi.dims) * self.sigma
        upstream = gp.BatchRequest()
        upstream[self.key] = roi.grow(reach, reach)
        return upstream

    def process(self, batch, request):
        widened = batch[self.key]
        widened.data = _blur(widened.data, self.sigma, truncate=self.truncate)
        batch[self.key] = widened.crop(request[self.key].roi)


class FlippedCopy(gp.BatchFilter):
    """Provides a new array ``target`` = 1 - ``key``, at the ROI requested for ``target``;
    ``process`` returns a fresh batch holding only ``target``."""

    def __init__(self, key: gp.ArrayKey, target: gp.ArrayKey):
        self.key = key
        self.target = target

    def setup(self):
        # downstream nodes may now request target, with the same spec as key
        self.provides(self.target, self.spec[self.key].copy())

    def prepare(self, request):
        needs = gp.BatchRequest()
        needs[self.key] = request[self.target].copy()
        return needs

    def process(self, batch, request):
        spec = batch[self.key].spec.copy()
        spec.roi = request[self.target].roi.copy()
        result = gp.Batch()
        result[self.target] = gp.Array(1 - batch[self.key].data, spec)
        return result


def tutorial_steps(container: str) -> Iterator[tuple[object, dict[str, gp.BatchRequest]]]:
    """The tutorial's pipelines in order, each with its named requests (sent in one build)."""
    source = zarr_source(container, {RAW: ("raw", True)})
    shift = gp.RandomLocation()
    mirror_transpose = gp.SimpleAugment()
    to_unit_range = gp.Normalize(RAW)
    left, right = ((100, 100), (128, 128)), ((100, 228), (128, 128))
    tile = ((0, 0), (128, 128))

    yield chain(source, shift, mirror_transpose), {"plain": ask(RAW=((0, 0), (64, 128)))}
    yield (chain(source, Report("A"), shift, Report("B"), mirror_transpose, Report("C")),
           {"print": ask(RAW=((0, 0), (64, 128)))})
    yield chain(source, to_unit_range, shift, FlipInPlace(RAW)), {"invert": ask(RAW=tile)}
    yield (chain(source, to_unit_range, BlurWithoutContext(RAW, sigma=SIGMA)),
           {"naive_smooth": ask(RAW=left)})
    # two adjacent tiles: without context they disagree at the seam, with context they match
    for name, blur in (("naive", BlurWithoutContext(RAW, SIGMA)),
                       ("smooth", BlurWithContext(RAW, SIGMA))):
        yield (chain(source, to_unit_range, blur),
               {f"{name}_left": ask(RAW=left), f"{name}_right": ask(RAW=right)})
    yield (chain(source, to_unit_range, Report("before Smooth"),
                 BlurWithContext(RAW, sigma=SIGMA), Report("after Smooth")),
           {"smooth_print": ask(RAW=left)})
    # a new array: same ROI as the input, then an overlapping one
    for name, target in (("new_array", tile), ("new_array_overlapping", ((64, 64), (128, 128)))):
        yield (chain(source, to_unit_range, shift, FlippedCopy(RAW, INVERTED)),
               {name: ask(RAW=tile, INVERTED_RAW=target)})


def run(data: Path) -> dict[str, gp.Batch]:
    """Request every batch of the tutorial from ``data/sample_data.zarr``; ``{name: batch}``.

    Example:
        >>> batches = run(Path("/tmp"))  # doctest: +SKIP
        >>> batches["smooth_left"][RAW].data.shape  # doctest: +SKIP
        (3, 128, 128)
    """
    batches = {}
    for pipeline, requests in tutorial_steps(str(data / "sample_data.zarr")):
        with gp.build(pipeline):
            for name, request in requests.items():
                batches[name] = pipeline.request_batch(request)
    for name, batch in batches.items():
        show(name, *(array.data for array in batch.arrays.values()))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384, help="image size in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        make_sample_data(Path(scratch) / "sample_data.zarr", args.size)
        run(Path(scratch))


if __name__ == "__main__":
    main()
