"""Write arrays with their world coordinates to zarr (OME-NGFF 0.4 + gunpowder attrs) or HDF5.

Used by ``Snapshot``; napari and neuroglancer open the zarr output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HDF5_SUFFIXES = (".hdf", ".h5", ".hdf5")


def ome_ngff_multiscales(name: str, ndim: int, voxel_size, offset) -> dict:
    """One OME-NGFF 0.4 ``multiscales`` entry for a single-scale array ``name``.

    Leading axes beyond the spatial ones are channels.

    Example:
        >>> ome_ngff_multiscales("raw", 3, (4, 2, 2), (8, 0, 0))["datasets"][0]["path"]
        'raw'
    """
    spatial = len(voxel_size)
    channels = ndim - spatial
    axes = [{"name": f"c{i}" if channels > 1 else "c", "type": "channel"}
            for i in range(channels)]
    axes += [{"name": n, "type": "space"} for n in ("z", "y", "x")[3 - spatial:]] if (
        spatial <= 3) else [{"name": f"d{i}", "type": "space"} for i in range(spatial)]
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
    Returns ``path``.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
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
        multiscales.setdefault(parent, []).append(
            ome_ngff_multiscales(leaf, data.ndim, voxel_size, offset))
    for parent, entries in multiscales.items():
        group = root.require_group(parent) if parent else root
        group.attrs["multiscales"] = entries


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
