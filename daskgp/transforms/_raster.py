"""Drawing points and segments into one block of voxels: balls, hollow balls, tubes, peaks.

Pure functions on small numpy arrays; ``RasterizeGraph`` maps ``raster_block`` over chunks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["raster_block", "segment_distances"]


def segment_distances(voxels: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      scale: np.ndarray) -> np.ndarray:
    """Normalized distances ``(len(voxels), len(starts))`` from voxel indices to segments
    ``[starts, ends]`` (voxel indices), in the metric ``|scale * (a - b)|``.

    Example:
        >>> segment_distances(np.array([[0, 2], [5, 0]]), np.array([[0, 0]]),
        ...                   np.array([[0, 4]]), np.array([1.0, 1.0])).tolist()
        [[0.0], [5.0]]
    """
    a = starts[None] * scale
    b = ends[None] * scale
    p = voxels[:, None] * scale
    direction = b - a
    length2 = (direction**2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(length2 > 0, ((p - a) * direction).sum(axis=-1) / length2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    nearest = a + t[..., None] * direction
    return np.sqrt(((p - nearest) ** 2).sum(axis=-1))


def _distance_maps(begin, shape, points, point_colors, segments, segment_colors, scale,
                   labels=None, point_labels=None, segment_labels=None):
    """Per colour, the smallest normalized distance of each voxel of the block to a point
    or segment of that colour (only within the voxel's label, if labels are given)."""
    grids = np.meshgrid(*(np.arange(b, b + s) for b, s in zip(begin, shape, strict=True)),
                        indexing="ij")
    voxels = np.stack([g.ravel() for g in grids], axis=1)
    maps = {}
    for color in np.unique(np.concatenate([point_colors, segment_colors])):
        distance = np.full(len(voxels), np.inf)
        for which in (point_colors == color).nonzero()[0]:
            d = np.sqrt((((voxels - points[which]) * scale) ** 2).sum(axis=1))
            if labels is not None:
                d[labels != point_labels[which]] = np.inf
            np.minimum(distance, d, out=distance)
        for which in (segment_colors == color).nonzero()[0]:
            d = segment_distances(voxels, segments[which, 0][None], segments[which, 1][None],
                                  scale)[:, 0]
            if labels is not None:
                d[labels != segment_labels[which]] = np.inf
            np.minimum(distance, d, out=distance)
        maps[float(color)] = distance.reshape(shape)
    return maps


def _labels_at(voxels: np.ndarray, mask: np.ndarray, mask_begin: np.ndarray) -> np.ndarray:
    """Mask labels at global voxel indices (0 outside the mask block)."""
    local = voxels - mask_begin
    inside = np.all((local >= 0) & (local < np.array(mask.shape)), axis=1)
    labels = np.zeros(len(voxels), dtype=mask.dtype)
    labels[inside] = mask[tuple(local[inside].T)]
    return labels


def raster_block(begin, shape, points, point_colors, segments, segment_colors, scale, mode,
                 inner_radius_fraction, dtype, fg_value=1, bg_value=0, mask=None,
                 mask_begin=None) -> np.ndarray:
    """One block of ``RasterizeGraph``'s output: voxels with global indices ``begin`` to
    ``begin + shape``; ``points`` ``(N, dims)`` and ``segments`` ``(M, 2, dims)`` are voxel
    indices, ``scale = voxel_size / radius``.

    Ball mode: a voxel takes the colour of a point or segment within normalized distance 1
    (and beyond ``inner_radius_fraction``, for hollow balls); colour 1 becomes ``fg_value``,
    background ``bg_value``. Peak mode: ``exp(-d^2 / 2)`` of the distance to the nearest.

    Example:
        >>> raster_block((0,), (5,), np.array([[2]]), np.ones(1), np.zeros((0, 2, 1)),
        ...              np.zeros(0), np.array([1.0]), "ball", None, np.uint8).tolist()
        [0, 1, 1, 1, 0]
    """
    begin = np.asarray(begin, dtype=np.int64)
    scale = np.asarray(scale, dtype=np.float64)
    labels = point_labels = segment_labels = None
    if mask_begin is not None or mask is not None:
        if mask is None:  # the block is outside the mask: nothing is inside an object
            return np.full(shape, bg_value if mode == "ball" else 0, dtype=dtype)
        mask = np.asarray(mask)
        grids = np.meshgrid(*(np.arange(b, b + s) for b, s in zip(begin, shape, strict=True)),
                            indexing="ij")
        labels = _labels_at(np.stack([g.ravel() for g in grids], axis=1), mask, mask_begin)
        point_labels = _labels_at(points, mask, mask_begin)
        segment_labels = _labels_at(segments[:, 0], mask, mask_begin) if len(segments) else \
            np.zeros(0, mask.dtype)
        keep = point_labels != 0
        points, point_colors, point_labels = points[keep], point_colors[keep], point_labels[keep]
        keep = segment_labels != 0
        segments, segment_colors = segments[keep], segment_colors[keep]
        segment_labels = segment_labels[keep]
    maps = _distance_maps(begin, shape, points, point_colors, segments, segment_colors, scale,
                          labels, point_labels, segment_labels)
    if mode == "peak":
        out = np.zeros(shape, dtype=np.float64)
        for distance in maps.values():
            np.maximum(out, np.exp(-0.5 * distance**2), out=out)
        return out.astype(dtype)
    raster = np.zeros(shape, dtype=np.float64)
    for color, distance in maps.items():
        drawn = distance <= 1.0
        if inner_radius_fraction is not None:
            drawn &= distance > inner_radius_fraction
        raster[drawn] = color
    out = np.where(raster == 0, bg_value, np.where(raster == 1, fg_value, raster))
    return out.astype(dtype)
