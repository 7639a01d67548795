"""A pipeline file for the ``daskgp precompute`` tests: two position-encoding arrays, a random
location and a slow numpy node that logs the seed of every batch it computes.

``DASKGP_TEST_SLEEP`` (seconds per batch) and ``DASKGP_TEST_LOG`` (a file) configure the node.
"""

import os
import time

import numpy as np

import daskgp as gp

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("LABELS")


class SlowLog(gp.BatchFilter):
    """A numpy node that sleeps ``seconds`` and appends the batch's seed to ``log``: a counter
    of the batches computed, and slow enough to kill a run part way."""

    def __init__(self, seconds: float, log: str | None) -> None:
        self.seconds = seconds
        self.log = log

    def process(self, batch, request):
        time.sleep(self.seconds)
        if self.log:
            with open(self.log, "a") as log:
                log.write(f"{request.random_seed}\n")


z, y, x = np.meshgrid(np.arange(20), np.arange(20), np.arange(20), indexing="ij")
raw = (z * 10**4 + y * 10**2 + x).astype(np.int64)
labels = (raw % 251).astype(np.uint8)
spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (40, 20, 20)), voxel_size=(2, 1, 1))

pipeline = (
    (gp.ArraySource(RAW, raw, spec), gp.ArraySource(LABELS, labels, spec))
    + gp.MergeProvider()
    + gp.RandomLocation()
    + SlowLog(float(os.environ.get("DASKGP_TEST_SLEEP", 0)), os.environ.get("DASKGP_TEST_LOG"))
)

request = gp.BatchRequest()
request.add(RAW, (8, 6, 6))
request.add(LABELS, (4, 4, 4))
