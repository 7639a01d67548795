"""A pipeline file for the ``daskgp predict`` tests: a volume and a deterministic model, a
fixed 3D convolution that needs context, optionally slow and logging every block it computes.

``DASKGP_TEST_SLEEP`` (seconds per block) and ``DASKGP_TEST_LOG`` (a file) configure the model.
"""

import os
import time

import numpy as np
from scipy import ndimage

import daskgp as gp

RAW = gp.ArrayKey("RAW")
PRED = gp.ArrayKey("PRED")
VOXEL_SIZE = gp.Coordinate(2, 1, 1)
OFFSET = gp.Coordinate(10, -3, 0)
OUTPUT_TILE = gp.Coordinate(8, 8, 8)  # voxels; the volume is no multiple of it


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
        self.context = gp.Coordinate(k // 2 for k in self.kernel.shape)
        self.seconds, self.log = seconds, log

    def setup(self):
        spec = self.spec[RAW].copy()
        context = self.context * spec.voxel_size
        spec.roi = spec.roi.grow(-context, -context)
        self.provides(PRED, spec)

    def prepare(self, request):
        context = self.context * self.spec[RAW].voxel_size
        deps = gp.BatchRequest()
        deps[RAW] = gp.ArraySpec(roi=request[PRED].roi.grow(context, context))
        return deps

    def process(self, batch, request):
        raw = batch[RAW].data
        out = raw.map_blocks(convolve_block, dtype=raw.dtype, kernel=self.kernel,
                             seconds=self.seconds, log=self.log)
        out = out[tuple(slice(c, s - c) for c, s in zip(self.context, raw.shape, strict=True))]
        spec = self.spec[PRED].copy()
        spec.roi = request[PRED].roi
        result = gp.Batch()
        result[PRED] = gp.Array(out, spec)
        return result


rng = np.random.default_rng(0)
raw = rng.integers(0, 10, (22, 27, 25)).astype(np.float64)  # integers: sums are exact
kernel = rng.integers(-2, 3, (3, 5, 3)).astype(np.float64)
spec = gp.ArraySpec(roi=gp.Roi(OFFSET, gp.Coordinate(raw.shape) * VOXEL_SIZE),
                    voxel_size=VOXEL_SIZE)

pipeline = gp.ArraySource(RAW, raw, spec) + Convolve(
    kernel, float(os.environ.get("DASKGP_TEST_SLEEP", 0)), os.environ.get("DASKGP_TEST_LOG"))

request = gp.BatchRequest()
request.add(RAW, (OUTPUT_TILE + gp.Coordinate(1, 2, 1) * 2) * VOXEL_SIZE)
request.add(PRED, OUTPUT_TILE * VOXEL_SIZE)
