"""Users' own nodes of the kinds gunpowder's tutorial teaches, and pipelines using them.

``run_cases(gp)`` runs every case with ``gp`` = ``gunpowder`` or ``daskgp`` and returns
``{case name: numpy array}``. ``make_tutorial_fixtures.py`` stores gunpowder 1.5.0's values;
``tests/test_tutorial_nodes.py`` compares daskgp's with them. The nodes are daskgp's own code
for the kinds of node that gunpowder's tutorial (docs/source/tutorial_batch_provider.rst)
teaches, not a copy of it: a filter that changes data in place, one that asks for context and
crops, one that returns a new batch with a new array, one that only watches; numpy/scipy stand
in for skimage (not a dependency). Plus the habits of user code that the tutorial does not
show: sources without a dtype, arrays with channel axes, a filter that changes a dtype.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SHAPE = (64, 96)


def make_nodes(gp):
    """The users' node classes, defined against the library ``gp``."""

    class SineSource(gp.BatchProvider):
        """A 2D float64 source whose setup() declares no dtype."""

        def __init__(self, key):
            self.key = key

        def setup(self):
            self.provides(self.key, gp.ArraySpec(roi=gp.Roi((0, 0), SHAPE), voxel_size=(1, 1),
                                                 interpolatable=True))

        def provide(self, request):
            batch = gp.Batch()
            roi = request[self.key].roi
            y, x = np.meshgrid(np.arange(roi.begin[0], roi.end[0]),
                               np.arange(roi.begin[1], roi.end[1]), indexing="ij")
            spec = self.spec[self.key].copy()
            spec.roi = roi
            batch[self.key] = gp.Array(0.5 + 0.5 * np.sin(y / 7.0) * np.cos(x / 5.0), spec)
            return batch

    class RgbSource(gp.BatchProvider):
        """A uint8 source with a leading channel axis (3, y, x) and no dtype in its spec."""

        def __init__(self, key, labels=None):
            self.key = key
            self.labels = labels

        def setup(self):
            self.provides(self.key, gp.ArraySpec(roi=gp.Roi((0, 0), SHAPE), voxel_size=(2, 2),
                                                 interpolatable=True))
            if self.labels is not None:
                self.provides(self.labels, gp.ArraySpec(roi=gp.Roi((0, 0), SHAPE),
                                                        voxel_size=(2, 2), interpolatable=False))

        def provide(self, request):
            batch = gp.Batch()
            for key, request_spec in request.array_specs.items():
                roi = request_spec.roi
                begin = roi.begin / 2
                y, x = np.meshgrid(np.arange(begin[0], begin[0] + roi.shape[0] // 2),
                                   np.arange(begin[1], begin[1] + roi.shape[1] // 2),
                                   indexing="ij")
                spec = self.spec[key].copy()
                spec.roi = roi
                if key == self.key:
                    data = np.stack([(y * 7 + x * c) % 256 for c in (1, 3, 5)]).astype(np.uint8)
                else:
                    data = (y // 4 * 100 + x // 6).astype(np.uint64)
                batch[key] = gp.Array(data, spec)
            return batch

    class InvertIntensities(gp.BatchFilter):
        """Flips intensities in [0, 1] by overwriting the incoming array's data (the kind of
        in-place filter the tutorial teaches first)."""

        def __init__(self, array):
            self.array = array

        def process(self, batch, request):
            target = batch[self.array]
            target.data = 1.0 - target.data

    class Smooth(gp.BatchFilter):
        """Gaussian smoothing that widens its upstream request by the kernel's reach
        (``truncate`` sigmas) and cuts the result back to the requested ROI."""

        truncate = 4

        def __init__(self, array, sigma):
            self.array = array
            self.sigma = sigma

        def _reach(self, dims):
            return gp.Coordinate((self.truncate,) * dims) * self.sigma

        def prepare(self, request):
            wanted = request[self.array].roi
            reach = self._reach(wanted.dims)
            upstream = gp.BatchRequest()
            upstream[self.array] = wanted.grow(reach, reach)
            return upstream

        def process(self, batch, request):
            smoothed = batch[self.array]
            smoothed.data = ndimage.gaussian_filter(smoothed.data, sigma=self.sigma,
                                                    truncate=self.truncate)
            batch[self.array] = smoothed.crop(request[self.array].roi)

    class InvertIntoNewArray(gp.BatchFilter):
        """Provides ``out_array`` = 1 - ``in_array`` over the ROI asked for ``out_array``,
        in a fresh batch that holds only the new array."""

        def __init__(self, in_array, out_array):
            self.in_array = in_array
            self.out_array = out_array

        def setup(self):
            self.provides(self.out_array, self.spec[self.in_array].copy())

        def prepare(self, request):
            upstream = gp.BatchRequest()
            upstream[self.in_array] = request[self.out_array].copy()
            return upstream

        def process(self, batch, request):
            source = batch[self.in_array]
            out_spec = source.spec.copy()
            out_spec.roi = request[self.out_array].roi.copy()
            result = gp.Batch()
            result[self.out_array] = gp.Array(1.0 - source.data, out_spec)
            return result

    class ThresholdMask(gp.BatchFilter):
        """Provides a mask whose declared spec is a float copy, but whose data is bool (what
        funkelab/lsd's training scripts do)."""

        def __init__(self, raw, mask, threshold):
            self.raw = raw
            self.mask = mask
            self.threshold = threshold

        def setup(self):
            self.provides(self.mask, self.spec[self.raw].copy())

        def prepare(self, request):
            deps = gp.BatchRequest()
            deps[self.raw] = request[self.mask].roi
            return deps

        def process(self, batch, request):
            out = gp.Batch()
            spec = batch[self.raw].spec.copy()
            spec.dtype = np.bool_
            out[self.mask] = gp.Array(batch[self.raw].data > self.threshold, spec)
            return out

    class ChannelMean(gp.BatchFilter):
        """Reduces a (c, y, x) array to (y, x) float32 in place: changes shape and dtype."""

        def __init__(self, array):
            self.array = array

        def process(self, batch, request):
            batch[self.array].data = batch[self.array].data.mean(axis=0).astype(np.float32)

    class LabelBoundaries(gp.BatchFilter):
        """Asks for another key at a larger ROI than the request's, provides a new uint8
        array (declared without a dtype) at the requested ROI."""

        def __init__(self, labels, boundaries):
            self.labels = labels
            self.boundaries = boundaries

        def setup(self):
            spec = self.spec[self.labels].copy()
            spec.dtype = None
            self.provides(self.boundaries, spec)

        def prepare(self, request):
            deps = gp.BatchRequest()
            deps[self.labels] = request[self.boundaries].roi.grow((2, 2), (2, 2))
            return deps

        def process(self, batch, request):
            labels = batch[self.labels].data
            boundary = np.zeros(labels.shape, np.uint8)
            boundary[1:, :] |= labels[1:, :] != labels[:-1, :]
            boundary[:, 1:] |= labels[:, 1:] != labels[:, :-1]
            spec = batch[self.labels].spec.copy()
            spec.dtype = np.uint8
            array = gp.Array(boundary, spec).crop(request[self.boundaries].roi)
            out = gp.Batch()
            out[self.boundaries] = array
            return out

    class Print(gp.BatchFilter):
        """Records each pass through it (``"<label> request"``, ``"<label> batch"``) in
        ``seen``; its prepare() and process() return None, so nothing is changed."""

        def __init__(self, label):
            self.label = label
            self.seen = []

        def prepare(self, request):
            self.seen.append(f"{self.label} request")

        def process(self, batch, request):
            self.seen.append(f"{self.label} batch")

    return dict(SineSource=SineSource, RgbSource=RgbSource, InvertIntensities=InvertIntensities,
                Smooth=Smooth, InvertIntoNewArray=InvertIntoNewArray,
                ThresholdMask=ThresholdMask, ChannelMean=ChannelMean,
                LabelBoundaries=LabelBoundaries, Print=Print)


def run_cases(gp) -> dict[str, np.ndarray]:
    """Every case's output arrays, computed with the library ``gp``."""
    n = make_nodes(gp)
    raw, inverted = gp.ArrayKey("RAW"), gp.ArrayKey("INVERTED_RAW")
    rgb, labels = gp.ArrayKey("RGB"), gp.ArrayKey("LABELS")
    mask, boundaries = gp.ArrayKey("MASK"), gp.ArrayKey("BOUNDARIES")
    out = {}

    def request_batch(pipeline, request):
        with gp.build(pipeline):
            return pipeline.request_batch(request)

    request = gp.BatchRequest()
    request[raw] = gp.Roi((8, 16), (32, 48))
    batch = request_batch(n["SineSource"](raw) + n["Print"]("A") + n["InvertIntensities"](raw),
                          request)
    out["invert_in_place"] = batch[raw].data

    request = gp.BatchRequest()
    request[raw] = gp.Roi((24, 24), (16, 32))
    batch = request_batch(n["SineSource"](raw) + n["Smooth"](raw, sigma=2.0), request)
    out["smooth_with_context"] = batch[raw].data

    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (32, 32))
    request[inverted] = gp.Roi((16, 16), (32, 32))
    batch = request_batch(n["SineSource"](raw) + n["InvertIntoNewArray"](raw, inverted), request)
    out["new_array_raw"] = batch[raw].data
    out["new_array_inverted"] = batch[inverted].data

    request = gp.BatchRequest()
    request[raw] = gp.Roi((0, 0), (16, 16))
    request[mask] = gp.Roi((8, 8), (24, 24))
    batch = request_batch(n["SineSource"](raw) + n["ThresholdMask"](raw, mask, 0.6), request)
    out["mask_raw"] = batch[raw].data
    out["mask_bool"] = batch[mask].data

    request = gp.BatchRequest()
    request[rgb] = gp.Roi((4, 8), (24, 40))
    batch = request_batch(n["RgbSource"](rgb) + gp.Normalize(rgb), request)
    out["rgb_normalized"] = batch[rgb].data

    request = gp.BatchRequest()
    request[rgb] = gp.Roi((4, 8), (24, 40))
    batch = request_batch(n["RgbSource"](rgb) + gp.Normalize(rgb) + n["ChannelMean"](rgb),
                          request)
    out["rgb_channel_mean"] = batch[rgb].data

    request = gp.BatchRequest()
    request[labels] = gp.Roi((8, 8), (16, 16))
    request[boundaries] = gp.Roi((12, 20), (20, 24))
    batch = request_batch(
        n["RgbSource"](rgb, labels) + n["LabelBoundaries"](labels, boundaries), request)
    out["boundaries_labels"] = batch[labels].data
    out["boundaries"] = batch[boundaries].data
    return out
