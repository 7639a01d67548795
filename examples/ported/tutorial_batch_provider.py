"""gunpowder's tutorial "Writing Your Own Node" (docs/source/tutorial_batch_provider.rst), ported.

Every node and pipeline of the tutorial, in its order. Changes that were still needed:

1. ``import gunpowder as gp`` -> ``import daskgp as gp``.
2. Data: skimage's ``astronaut()`` is replaced by a synthetic RGB image of the same layout
   (skimage is not a daskgp dependency), made by ``tutorial_simple_pipeline.make_sample_data``.
3. Inside the users' nodes, ``skimage.util.invert(data)`` -> ``1 - data`` (what it computes for
   floats in [0, 1]) and ``skimage.filters.gaussian(data, sigma=..., truncate=...)`` ->
   ``scipy.ndimage.gaussian_filter(data, sigma=..., truncate=..., mode="nearest")`` (skimage's
   default mode). The nodes' gunpowder code is otherwise unchanged: they run as numpy nodes.
4. ``imshow`` is replaced by printing shapes; ``Print`` output is kept.

Run: python examples/ported/tutorial_batch_provider.py [--size 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from scipy import ndimage

import daskgp as gp

sys.path.insert(0, str(Path(__file__).parent))
from tutorial_simple_pipeline import make_sample_data, show


class Print(gp.BatchFilter):

    def __init__(self, prefix):
        self.prefix = prefix

    def prepare(self, request):
        print(f"{self.prefix}\tRequest going upstream: {request}")

    def process(self, batch, request):
        print(f"{self.prefix}\tBatch going downstream: {batch}")


class InvertIntensities(gp.BatchFilter):

    def __init__(self, array):
        self.array = array

    def process(self, batch, request):

        data = batch[self.array].data
        batch[self.array].data = 1 - data


class NaiveSmooth(gp.BatchFilter):

    def __init__(self, array, sigma):
        self.array = array
        self.sigma = sigma

    def process(self, batch, request):

        data = batch[self.array].data
        batch[self.array].data = ndimage.gaussian_filter(data, sigma=self.sigma,
                                                         mode="nearest")


class Smooth(gp.BatchFilter):

    def __init__(self, array, sigma):
        self.array = array
        self.sigma = sigma
        self.truncate = 4

    def prepare(self, request):

        # the requested ROI for array
        roi = request[self.array].roi

        # 1. compute the context
        context = gp.Coordinate((self.truncate,)*roi.dims) * self.sigma

        # 2. enlarge the requested ROI by the context
        context_roi = roi.grow(context, context)

        # create a new request with our dependencies
        deps = gp.BatchRequest()
        deps[self.array] = context_roi

        # return the request
        return deps

    def process(self, batch, request):

        # 3. smooth the whole array (including the context)
        data = batch[self.array].data
        batch[self.array].data = ndimage.gaussian_filter(
            data,
            sigma=self.sigma,
            truncate=self.truncate,
            mode="nearest")

        # 4. crop the array back to the request
        batch[self.array] = batch[self.array].crop(request[self.array].roi)


class InvertIntensitiesIntoNewArray(gp.BatchFilter):
    """The tutorial's second ``InvertIntensities`` (renamed: both live in one module here)."""

    def __init__(self, in_array, out_array):
        self.in_array = in_array
        self.out_array = out_array

    def setup(self):

        # tell downstream nodes about the new array
        self.provides(
            self.out_array,
            self.spec[self.in_array].copy())

    def prepare(self, request):

        # to deliver inverted raw data, we need raw data in the same ROI
        deps = gp.BatchRequest()
        deps[self.in_array] = request[self.out_array].copy()

        return deps

    def process(self, batch, request):

        # get the data from in_array and invert it
        data = 1 - batch[self.in_array].data

        # create the array spec for the new array
        spec = batch[self.in_array].spec.copy()
        spec.roi = request[self.out_array].roi.copy()

        # create a new batch to hold the new array
        batch = gp.Batch()

        # create a new array
        inverted = gp.Array(data, spec)

        # store it in the batch
        batch[self.out_array] = inverted

        # return the new batch
        return batch


def run(data: Path) -> dict:
    """Every batch of the tutorial, by step name."""
    batches = {}
    raw = gp.ArrayKey('RAW')
    source = gp.ZarrSource(
        str(data / "sample_data.zarr"),  # the zarr container
        {raw: 'raw'},  # which dataset to associate to the array key
        {raw: gp.ArraySpec(interpolatable=True)}  # meta-information
    )
    random_location = gp.RandomLocation()
    simple_augment = gp.SimpleAugment()
    pipeline = source + random_location + simple_augment

    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (64, 128))
    with gp.build(pipeline):
        batches["plain"] = pipeline.request_batch(request)

    pipeline = (
        source +
        Print("A") +
        random_location +
        Print("B") +
        simple_augment +
        Print("C"))
    with gp.build(pipeline):
        batches["print"] = pipeline.request_batch(request)

    normalize = gp.Normalize(raw)
    pipeline = (
        source +
        normalize +
        random_location +
        InvertIntensities(raw))
    request[raw] = gp.Roi((0, 0), (128, 128))
    with gp.build(pipeline):
        batches["invert"] = pipeline.request_batch(request)

    pipeline = (
        source +
        normalize +
        NaiveSmooth(raw, sigma=5.0))
    request[raw] = gp.Roi((100, 100), (128, 128))
    with gp.build(pipeline):
        batches["naive_smooth"] = pipeline.request_batch(request)

    request_left = gp.BatchRequest()
    request_left[raw] = gp.Roi((100, 100), (128, 128))
    request_right = gp.BatchRequest()
    request_right[raw] = gp.Roi((100, 228), (128, 128))
    for name, node in (("naive", NaiveSmooth(raw, sigma=5.0)), ("smooth", Smooth(raw, 5.0))):
        pipeline = source + normalize + node
        with gp.build(pipeline):
            batch_left = pipeline.request_batch(request_left)
            batch_right = pipeline.request_batch(request_right)
        batches[f"{name}_left"], batches[f"{name}_right"] = batch_left, batch_right

    pipeline = (
        source +
        normalize +
        Print("before Smooth") +
        Smooth(raw, sigma=5.0) +
        Print("after Smooth"))
    request = gp.BatchRequest()
    request[raw] = gp.Roi((100, 100), (128, 128))
    with gp.build(pipeline):
        batches["smooth_print"] = pipeline.request_batch(request)

    inverted_raw = gp.ArrayKey('INVERTED_RAW')
    pipeline = (
        source +
        normalize +
        random_location +
        InvertIntensitiesIntoNewArray(raw, inverted_raw))
    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (128, 128))
    request[inverted_raw] = gp.Roi((0, 0), (128, 128))
    with gp.build(pipeline):
        batches["new_array"] = pipeline.request_batch(request)

    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (128, 128))
    request[inverted_raw] = gp.Roi((64, 64), (128, 128))
    with gp.build(pipeline):
        batches["new_array_overlapping"] = pipeline.request_batch(request)

    for name, batch in batches.items():
        show(name, *(array.data for array in batch.arrays.values()))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384, help="image size in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_sample_data(Path(tmp) / "sample_data.zarr", args.size)
        run(Path(tmp))


if __name__ == "__main__":
    main()
