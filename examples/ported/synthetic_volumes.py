"""Synthetic EM-like volumes for the ported scripts' tests: Voronoi "neurons" with dark
boundaries, so that the ports can run without the original scripts' downloads.

Example:
    >>> rng = np.random.default_rng(0)
    >>> labels = neuron_labels((8, 16, 16), 5, rng)
    >>> labels.dtype, labels.shape, int(labels.min()) >= 1
    (dtype('uint64'), (8, 16, 16), True)
    >>> em_raw(labels, rng).dtype
    dtype('uint8')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def neuron_labels(shape: Sequence[int], count: int, rng: np.random.Generator,
                  anisotropy: Sequence[float] | None = None) -> np.ndarray:
    """uint64 ids 1..count: each voxel takes the id of its nearest of ``count`` random
    centres (distances scaled by ``anisotropy``, voxels per world unit, if given)."""
    centres = rng.integers(0, shape, size=(count, len(shape)))
    markers = np.zeros(shape, dtype=np.uint64)
    markers[tuple(centres.T)] = np.arange(1, count + 1, dtype=np.uint64)
    _, closest = ndimage.distance_transform_edt(markers == 0, sampling=anisotropy,
                                                return_indices=True)
    return markers[tuple(closest)]


def em_raw(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 intensities: a smooth bright texture, darker on the labels' boundaries."""
    edges = ndimage.morphological_gradient(labels.astype(np.int64), size=2) > 0
    texture = ndimage.gaussian_filter(rng.random(labels.shape), 1.0)
    return np.clip(160 + 400 * (texture - 0.5) - 100 * edges, 0, 255).astype(np.uint8)
