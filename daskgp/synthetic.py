"""Synthetic EM-like volumes for examples, benchmarks and tests: neurons with dark membranes.

Labels are a 2D Voronoi tessellation that drifts slowly along z (neuron-like tubes); raw is
bright inside neurons, dark on their boundaries, blurred, with noise; the mask excludes a border.
Every block is generated independently by dask (``map_blocks``) and written with ``to_zarr``.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from scipy import ndimage
from scipy.spatial import cKDTree

COARSE = 4  # labels are computed on a grid this much coarser in y and x, then repeated


def _seeds(shape, spacing: float, seed: int) -> np.ndarray:
    """Random neuron centres in (y, x), and a per-neuron drift along z."""
    rng = np.random.default_rng(seed)
    count = max(8, int(shape[1] * shape[2] / spacing**2))
    centres = rng.uniform((0, 0), (shape[1], shape[2]), size=(count, 2))
    drift = rng.normal(0.0, 0.3, size=(count, 2))
    return np.concatenate([centres, drift], axis=1)


def _labels(begin, end, seeds: np.ndarray) -> np.ndarray:
    """Neuron ids (1-based, uint64) for the box [begin, end) of the volume."""
    zs = np.arange(begin[0], end[0])
    y0, x0 = begin[1] // COARSE * COARSE, begin[2] // COARSE * COARSE
    ys = np.arange(y0, end[1] + COARSE, COARSE) + COARSE / 2
    xs = np.arange(x0, end[2] + COARSE, COARSE) + COARSE / 2
    out = np.empty((len(zs), len(ys), len(xs)), np.uint64)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    for i, z in enumerate(zs):
        tree = cKDTree(seeds[:, :2] + z * seeds[:, 2:])
        out[i] = (tree.query(grid)[1] + 1).reshape(len(ys), len(xs))
    out = out.repeat(COARSE, axis=1).repeat(COARSE, axis=2)
    return out[:, begin[1] - y0: end[1] - y0, begin[2] - x0: end[2] - x0]


def _block(kind: str, seeds: np.ndarray, shape, seed: int, block_info=None) -> np.ndarray:
    location = block_info[None]["array-location"]
    begin = [lo for lo, _ in location]
    end = [hi for _, hi in location]
    if kind == "mask":
        border = [max(1, s // 10) for s in shape]
        inside = [np.arange(b, e) for b, e in zip(begin, end, strict=True)]
        masks = [(c >= m) & (c < s - m) for c, m, s in zip(inside, border, shape, strict=True)]
        return (masks[0][:, None, None] & masks[1][None, :, None]
                & masks[2][None, None, :]).astype(np.uint8)
    halo = 3
    grown_begin = [max(0, b - halo) for b in begin]
    grown_end = [min(s, e + halo) for e, s in zip(end, shape, strict=True)]
    labels = _labels(grown_begin, grown_end, seeds)
    crop = tuple(slice(b - g, b - g + (e - b))
                 for b, e, g in zip(begin, end, grown_begin, strict=True))
    if kind == "labels":
        return labels[crop]
    boundary = np.zeros(labels.shape, bool)
    for axis in (1, 2):
        change = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        boundary[tuple(lo)] |= change
    raw = np.where(boundary, 40.0, 190.0)
    raw = ndimage.gaussian_filter(raw, sigma=(0.5, 1.2, 1.2))
    rng = np.random.default_rng([seed, *begin])
    raw = raw[crop] + rng.normal(0.0, 12.0, size=raw[crop].shape)
    return np.clip(raw, 0, 255).astype(np.uint8)


def make_em_like_dataset(path: str | Path, shape=(100, 500, 500), chunks=(64, 128, 128),
                         voxel_size=(1, 1, 1), spacing: float = 40.0, seed: int = 0,
                         scheduler: str = "threads", zarr_format: int = 3) -> Path:
    """Write ``volumes/raw`` (uint8), ``volumes/labels/neuron_ids`` (uint64) and
    ``volumes/labels/mask`` (uint8) with ``resolution``/``offset`` attributes to a zarr group
    (format ``zarr_format``: 2 is readable by gunpowder's zarr 2) at ``path``, and return it.
    Deterministic for a given ``seed``.

    Example:
        >>> make_em_like_dataset("sample.zarr", shape=(64, 256, 256))   # doctest: +SKIP
    """
    path = Path(path)
    seeds = _seeds(shape, spacing, seed)
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = {"raw": ("volumes/raw", np.uint8), "labels": ("volumes/labels/neuron_ids",
                np.uint64), "mask": ("volumes/labels/mask", np.uint8)}
    sources, targets = [], []
    for kind, (name, dtype) in datasets.items():
        target = root.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        target.attrs.update(resolution=list(voxel_size), offset=[0] * len(shape))
        # one dask chunk per storage chunk: every chunk is written by exactly one task
        sources.append(da.map_blocks(_block, kind, seeds, shape, seed, dtype=dtype,
                                     chunks=da.core.normalize_chunks(chunks, shape),
                                     name=f"synthetic-{kind}-{seed}"))
        targets.append(target)
    da.store(sources, targets, lock=False, scheduler=scheduler)
    return path


#: The sample's shape: big enough for the seed request (raw 84 x 268 x 268) with room to move.
SAMPLE_SHAPE = (100, 400, 400)


def write_sample(path: str | Path, shape=SAMPLE_SHAPE, seed: int = 0,
                 overwrite: bool = False) -> Path:
    """Write the EM-like sample that the README's snippet and ``examples/`` read (what
    ``daskgp sample OUT.zarr`` runs): ``make_em_like_dataset`` in zarr format 2, so gunpowder
    1.5.0 reads it too. Refuses to replace an existing ``path`` unless ``overwrite``.

    Example:
        >>> write_sample("sample.zarr")  # doctest: +SKIP
        PosixPath('sample.zarr')
    """
    from .errors import PipelineSetupError

    path = Path(path)
    if path.exists() and not overwrite:
        raise PipelineSetupError(f"{path} exists; it was left untouched (pass --overwrite, or "
                                 "write elsewhere)")
    return make_em_like_dataset(path, shape=tuple(shape), seed=seed, zarr_format=2)


if __name__ == "__main__":
    import sys

    from .cli import main

    sys.exit(main(["sample", *sys.argv[1:]]))
