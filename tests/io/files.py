"""Small writers of real zarr (format 2 and 3) and HDF5 files for the source and reader tests."""

from __future__ import annotations

import h5py
import numpy as np
import zarr


def write_zarr(path, dataset: str, data: np.ndarray, chunks, zarr_format: int = 3,
               attrs: dict | None = None, group_attrs: dict | None = None) -> str:
    """Write ``data`` as array ``dataset`` of a zarr container at ``path``; return the path."""
    root = zarr.open_group(str(path), mode="a", zarr_format=zarr_format)
    array = root.create_array(dataset, shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    if attrs:
        array.attrs.update(attrs)
    if group_attrs:
        parent = dataset.rsplit("/", 1)[0] if "/" in dataset else ""
        group = root[parent] if parent else root
        group.attrs.update(group_attrs)
    return str(path)


def write_hdf5(path, dataset: str, data: np.ndarray, chunks=None, attrs: dict | None = None,
               mode: str = "a") -> str:
    """Write ``data`` as ``dataset`` of the HDF5 file at ``path``; return the path."""
    with h5py.File(path, mode) as file:
        written = file.create_dataset(dataset, data=data, chunks=chunks)
        for name, value in (attrs or {}).items():
            written.attrs[name] = value
    return str(path)


def world_slices(roi, offset, voxel_size) -> tuple[slice, ...]:
    """Voxel slices of world ``roi`` in an array starting at world ``offset``."""
    return tuple(
        slice((b - o) // v, (b - o) // v + s // v)
        for b, s, o, v in zip(roi.begin, roi.shape, offset, voxel_size, strict=True)
    )
