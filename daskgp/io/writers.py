"""Write arrays with their world coordinates to zarr (OME-NGFF 0.4 + gunpowder attrs) or HDF5.

Used by ``Snapshot``; napari and neuroglancer open the zarr output.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .metadata import ome_ngff_axes, ome_ngff_group_attrs, ome_ngff_shape

HDF5_SUFFIXES = (".hdf", ".h5", ".hdf5")

logger = logging.getLogger(__name__)


def ome_ngff_multiscales(name: str, ndim: int, voxel_size, offset) -> dict | None:
    """One OME-NGFF 0.4 ``multiscales`` entry for a single-scale array ``name``, or None when
    OME-NGFF cannot describe the array (see ``ome_ngff_axes``).

    Leading axes beyond the spatial ones are channels (one at most).

    Example:
        >>> ome_ngff_multiscales("raw", 3, (4, 2, 2), (8, 0, 0))["datasets"][0]["path"]
        'raw'
    """
    axes = ome_ngff_axes(ndim, len(voxel_size))
    if axes is None:
        return None
    channels = ndim - len(voxel_size)
    scale = [1.0] * channels + [float(v) for v in voxel_size]
    translation = [0.0] * channels + [float(o) for o in offset]
    return {
        "version": "0.4",
        "name": name,
        "axes": axes,
        "datasets": [{
            "path": name,
            "coordinateTransformations": [
                {"type": "scale", "scale": scale},
                {"type": "translation", "translation": translation},
            ],
        }],
    }


def write_arrays(path: str, arrays: dict[str, tuple], compression: str | None = None,
                 store_value_range: bool = False) -> str:
    """Write ``{dataset: (data, voxel_size, offset)}`` to ``path`` (zarr, or HDF5 by suffix).

    Every dataset gets ``resolution`` and ``offset`` attributes (world units, gunpowder's
    convention); in zarr, its parent group also gets an OME-NGFF 0.4 ``multiscales`` entry.
    A model's singleton batch axis is dropped (``ome_ngff_shape``). Returns ``path``.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: (np.asarray(data).reshape(ome_ngff_shape(np.shape(data), len(voxel_size))),
                     voxel_size, offset)
              for name, (data, voxel_size, offset) in arrays.items()}
    if path.endswith(HDF5_SUFFIXES):
        _write_hdf5(path, arrays, compression, store_value_range)
    else:
        _write_zarr(path, arrays, compression, store_value_range)
    return path


def _attrs(data: np.ndarray, voxel_size, offset, store_value_range: bool) -> dict:
    attrs = {"resolution": [int(v) for v in voxel_size], "offset": [int(o) for o in offset]}
    if store_value_range and data.size:
        attrs["value_range"] = [data.min().item(), data.max().item()]
    return attrs


def _write_zarr(path: str, arrays: dict, compression: str | None,
                store_value_range: bool) -> None:
    import zarr
    from numcodecs import get_codec

    root = zarr.open_group(path, mode="a", zarr_format=2)
    compressor = get_codec({"id": compression}) if compression else "auto"
    multiscales: dict[str, list] = {}
    for name, (data, voxel_size, offset) in arrays.items():
        data = np.asarray(data)
        parent, _, leaf = name.rpartition("/")
        array = root.create_array(name, shape=data.shape, dtype=data.dtype,
                                  chunks=data.shape or (1,), compressors=compressor,
                                  overwrite=True)
        array[...] = data
        array.attrs.update(_attrs(data, voxel_size, offset, store_value_range))
        entry = ome_ngff_multiscales(leaf, data.ndim, voxel_size, offset)
        if entry is None:
            logger.warning("%s: %s of shape %s has no OME-NGFF description (OME-NGFF allows "
                           "2 or 3 space axes and one channel axis); written without "
                           "multiscales", path, name, data.shape)
            continue
        multiscales.setdefault(parent, []).append(entry)
    for parent, entries in multiscales.items():
        group = root.require_group(parent) if parent else root
        group.attrs.update(ome_ngff_group_attrs(parent, entries, group.attrs))


def _write_hdf5(path: str, arrays: dict, compression: str | None,
                store_value_range: bool) -> None:
    import h5py

    with h5py.File(path, "a") as file:
        for name, (data, voxel_size, offset) in arrays.items():
            data = np.asarray(data)
            if name in file:
                del file[name]
            dataset = file.create_dataset(name, data=data, compression=compression)
            for key, value in _attrs(data, voxel_size, offset, store_value_range).items():
                dataset.attrs[key] = value
