"""Graphs in zarr or HDF5 files, in gunpowder's snapshot layout: ``<name>-ids``,
``<name>-locations`` and ``<name>-edges`` datasets (written by ``Snapshot``, read back here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..graph import Graph
from ..specs import GraphSpec
from .writers import HDF5_SUFFIXES, write_arrays

__all__ = ["graph_datasets", "read_graph", "write_snapshot"]


def graph_datasets(name: str, graph: Graph) -> dict[str, np.ndarray]:
    """The three datasets of ``graph`` under ``name``: ids ``(N,)`` int64, locations
    ``(N, dims)`` and edges ``(M, 2)`` int64 (node ids).

    Example:
        >>> g = Graph.from_arrays([3, 4], [[0.0, 1.0], [2.0, 3.0]], [[3, 4]])
        >>> sorted(graph_datasets("points", g))
        ['points-edges', 'points-ids', 'points-locations']
    """
    return {
        f"{name}-ids": graph.ids.astype(np.int64),
        f"{name}-locations": np.asarray(graph.locations),
        f"{name}-edges": graph.edge_array.astype(np.int64).reshape(-1, 2),
    }


def _write_datasets(path: str, datasets: dict[str, np.ndarray], compression) -> None:
    if path.endswith(HDF5_SUFFIXES):
        import h5py

        with h5py.File(path, "a") as file:
            for name, data in datasets.items():
                if name in file:
                    del file[name]
                file.create_dataset(name, data=data, compression=compression)
        return
    import zarr
    from numcodecs import get_codec

    root = zarr.open_group(path, mode="a", zarr_format=2)
    compressor = get_codec({"id": compression}) if compression else "auto"
    for name, data in datasets.items():
        chunks = tuple(max(1, s) for s in data.shape)
        array = root.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                                  compressors=compressor, overwrite=True)
        if data.size:
            array[...] = data


def write_snapshot(path: str, arrays: dict, graphs: dict[str, Graph], compression=None,
                   store_value_range: bool = False) -> str:
    """``write_arrays(path, arrays, ...)`` plus the datasets of each graph in ``graphs``
    (``{dataset name: Graph}``) and its ROI as attributes of its ids dataset. Returns
    ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if arrays:
        write_arrays(path, arrays, compression, store_value_range)
    for name, graph in graphs.items():
        _write_datasets(path, graph_datasets(name, graph), compression)
        roi = graph.spec.roi
        if roi is not None:
            _set_attrs(path, f"{name}-ids", {"roi_offset": [int(v) for v in roi.begin],
                                             "roi_shape": [int(v) for v in roi.shape],
                                             "directed": graph.directed})
    return path


def _set_attrs(path: str, name: str, attrs: dict) -> None:
    if path.endswith(HDF5_SUFFIXES):
        import h5py

        with h5py.File(path, "a") as file:
            file[name].attrs.update(attrs)
    else:
        import zarr

        zarr.open_group(path, mode="a", zarr_format=2)[name].attrs.update(attrs)


def read_graph(path: str, name: str) -> Graph:
    """The graph written under ``name`` to the zarr or HDF5 file ``path``.

    Example:
        >>> graph = read_graph("snapshots/0.zarr", "points")          # doctest: +SKIP
    """
    if str(path).endswith(HDF5_SUFFIXES):
        import h5py

        with h5py.File(path, "r") as file:
            data = {s: file[f"{name}-{s}"][...] for s in ("ids", "locations", "edges")}
            attrs = dict(file[f"{name}-ids"].attrs)
    else:
        import zarr

        root = zarr.open_group(str(path), mode="r")
        data = {s: root[f"{name}-{s}"][...] for s in ("ids", "locations", "edges")}
        attrs = dict(root[f"{name}-ids"].attrs)
    spec = GraphSpec(dtype=data["locations"].dtype, directed=attrs.get("directed"))
    if "roi_offset" in attrs:
        from ..geometry import Roi

        spec.roi = Roi(tuple(attrs["roi_offset"]), tuple(attrs["roi_shape"]))
    return Graph.from_arrays(data["ids"], data["locations"], data["edges"], spec)
