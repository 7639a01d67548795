"""lsd's own ``AddLocalShapeDescriptor`` (PyPI ``lsds`` 0.1.3) and the mtlsd script's user
node, run on fixed labels by gunpowder or by daskgp.

``run_cases(gp)`` returns ``{case name: numpy array}``; ``make_lsd_fixtures.py`` stores
gunpowder 1.5.0's values (lsd imports the real gunpowder there), and
``tests/test_ported_examples.py`` compares daskgp's, where lsd imports daskgp through
``daskgp.register_as_gunpowder()``. The source is a user node written the gunpowder way (no
dtype in its specs); the request keeps every ROI inside the labels so nothing is padded.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SHAPE = (96, 96, 96)
VOXEL = (8, 8, 8)


def volumes() -> tuple[np.ndarray, np.ndarray]:
    """uint64 Voronoi labels with 0 on a 1-voxel boundary, and a uint8 mask that is 0 on
    the x < 40 slab."""
    rng = np.random.default_rng(11)
    centres = rng.integers(0, SHAPE, size=(25, 3))
    markers = np.zeros(SHAPE, dtype=np.uint64)
    markers[tuple(centres.T)] = np.arange(1, len(centres) + 1, dtype=np.uint64)
    _, closest = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    labels = markers[tuple(closest)]
    boundary = ndimage.morphological_gradient(labels.astype(np.int64), size=2) > 0
    labels[boundary] = 0
    mask = np.ones(SHAPE, dtype=np.uint8)
    mask[:, :, :40] = 0
    return labels, mask


def run_cases(gp) -> dict[str, np.ndarray]:
    from lsd.train.gp import AddLocalShapeDescriptor

    labels_key, mask_key = gp.ArrayKey("GT_LABELS"), gp.ArrayKey("GT_LABELS_MASK")
    lsds_key, scale_key = gp.ArrayKey("GT_LSDS"), gp.ArrayKey("GT_LSDS_SCALE")
    affs_key, affs_scale_key = gp.ArrayKey("GT_AFFS"), gp.ArrayKey("GT_AFFS_SCALE")
    labels, mask = volumes()

    class LabelSource(gp.BatchProvider):
        """Labels and mask from numpy, specs without a dtype."""

        def setup(self):
            roi = gp.Roi((0, 0, 0), gp.Coordinate(SHAPE) * gp.Coordinate(VOXEL))
            for key in (labels_key, mask_key):
                self.provides(key, gp.ArraySpec(roi=roi, voxel_size=gp.Coordinate(VOXEL),
                                                interpolatable=False))

        def provide(self, request):
            batch = gp.Batch()
            for key, data in ((labels_key, labels), (mask_key, mask)):
                if key in request:
                    spec = self.spec[key].copy()
                    spec.roi = request[key].roi
                    index = (spec.roi / gp.Coordinate(VOXEL)).to_slices()
                    batch[key] = gp.Array(data[index], spec)
            return batch

    class UnmaskBackground(gp.BatchFilter):
        """The mtlsd script's node: float32 LSD scale OR not-mask, as bool, in place."""

        def __init__(self, target_mask, background_mask):
            self.target_mask = target_mask
            self.background_mask = background_mask

        def process(self, batch, request):
            batch[self.target_mask].data = np.logical_or(
                batch[self.target_mask].data, np.logical_not(batch[self.background_mask].data))

    request = gp.BatchRequest()
    roi = gp.Roi((320, 304, 288), (96, 112, 128))  # 12 x 14 x 16 voxels, 3 sigma inside
    for key in (labels_key, mask_key, lsds_key, scale_key, affs_key, affs_scale_key):
        request[key] = gp.ArraySpec(roi=roi)
    outputs = {}
    plain = (AddLocalShapeDescriptor(labels_key, lsds_key, lsds_mask=scale_key, sigma=80,
                                     downsample=2)
             + UnmaskBackground(scale_key, mask_key))
    masked = AddLocalShapeDescriptor(labels_key, lsds_key, lsds_mask=scale_key,
                                     labels_mask=mask_key, sigma=(40, 80, 80),
                                     components="0129")
    for case, lsd_nodes in {"plain": plain, "labels_mask": masked}.items():
        pipeline = (LabelSource() + lsd_nodes
                    + gp.AddAffinities([[-1, 0, 0], [0, -1, 0], [0, 0, -1]], labels=labels_key,
                                       affinities=affs_key)
                    + gp.BalanceLabels(affs_key, affs_scale_key))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)
        for key in (lsds_key, scale_key, affs_key, affs_scale_key):
            outputs[f"{case}/{key}"] = np.asarray(batch[key].data)
    return outputs
