"""A pipeline file for the plan-once tests of ``daskgp predict``: a zarr volume (the path in
``DASKGP_TEST_RAW``, made by ``write_raw``) and a deterministic lazy model, a 3D convolution
that needs context, scaled by ``SCALE`` (tests change it to make another model).

``DASKGP_TEST_SLEEP`` (seconds per block) and ``DASKGP_TEST_LOG`` (a file) configure the model.
"""

import os
import time

import numpy as np
import zarr
from scipy import ndimage

import daskgp as gp

SCALE = 1.0
RAW = gp.ArrayKey("RAW")
PRED = gp.ArrayKey("PRED")
VOXEL_SIZE = gp.Coordinate(2, 1, 1)
OFFSET = gp.Coordinate(10, -3, 0)
OUTPUT_TILE = gp.Coordinate(8, 8, 8)  # voxels; the volume is no multiple of it
CONTEXT = gp.Coordinate(1, 2, 1)

rng = np.random.default_rng(0)
raw = rng.integers(0, 10, (22, 27, 25)).astype(np.float64)  # integers: sums are exact
kernel = rng.integers(-2, 3, (3, 5, 3)).astype(np.float64) * SCALE


def write_raw(path):
    """Write ``raw`` to the zarr container ``path`` (chunks that are no tile's)."""
    array = zarr.create_array(path, name="raw", shape=raw.shape, chunks=(5, 7, 6),
                              dtype=raw.dtype, zarr_format=2, overwrite=True)
    array[:] = raw
    array.attrs.update({"resolution": list(VOXEL_SIZE), "offset": list(OFFSET)})


def convolve_block(block, kernel, seconds, log):
    if block.size:
        time.sleep(seconds)
        if log:
            with open(log, "a") as lines:
                lines.write(f"{block.shape}\n")
    return ndimage.convolve(block, kernel, mode="constant")


class Convolve(gp.BatchFilter):
    """A lazy model: PRED is RAW convolved with ``kernel``, valid part only (context needed)."""

    lazy = True

    def __init__(self, kernel, seconds=0.0, log=None):
        self.kernel = np.asarray(kernel)
        self.seconds, self.log = seconds, log

    def setup(self):
        spec = self.spec[RAW].copy()
        context = CONTEXT * spec.voxel_size
        spec.roi = spec.roi.grow(-context, -context)
        self.provides(PRED, spec)

    def prepare(self, request):
        context = CONTEXT * self.spec[RAW].voxel_size
        deps = gp.BatchRequest()
        deps[RAW] = gp.ArraySpec(roi=request[PRED].roi.grow(context, context))
        return deps

    def process(self, batch, request):
        raw_block = batch[RAW].data.rechunk(-1)  # the whole tile: context around every voxel
        out = raw_block.map_blocks(convolve_block, dtype=raw_block.dtype, kernel=self.kernel,
                                   seconds=self.seconds, log=self.log)
        out = out[tuple(slice(c, s - c) for c, s in zip(CONTEXT, raw_block.shape, strict=True))]
        spec = self.spec[PRED].copy()
        spec.roi = request[PRED].roi
        result = gp.Batch()
        result[PRED] = gp.Array(out, spec)
        return result


def expected_prediction(scale=1.0):
    """The whole-volume prediction (valid part) of the model scaled by ``scale``."""
    whole = ndimage.convolve(raw, kernel / SCALE * scale, mode="constant")
    return whole[tuple(slice(c, s - c) for c, s in zip(CONTEXT, raw.shape, strict=True))]


pipeline = gp.ZarrSource(os.environ.get("DASKGP_TEST_RAW", "raw.zarr"), {RAW: "raw"}) + Convolve(
    kernel, float(os.environ.get("DASKGP_TEST_SLEEP", 0)), os.environ.get("DASKGP_TEST_LOG"))

request = gp.BatchRequest()
request.add(RAW, (OUTPUT_TILE + CONTEXT * 2) * VOXEL_SIZE)
request.add(PRED, OUTPUT_TILE * VOXEL_SIZE)
