"""``daskgp show``: a PNG grid of mid-slices of stored arrays — snapshots, predictions and
precomputed batches — one row per file (or per precomputed batch), one panel per array.

Only the slices drawn are read from disk, so a whole-volume prediction costs one slice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import dask.array as da
import numpy as np

from .batch import Array
from .display import Panel, array_panel, common_centre, figure_png, grid_figure
from .errors import PipelineSetupError
from .geometry import Roi
from .io.layout import dataset_array_spec
from .io.metadata import MetadataError, read_spatial_metadata
from .io.writers import HDF5_SUFFIXES
from .precompute import LayoutError, read_completed, read_layout

#: Arrays whose name starts with this are daskgp's bookkeeping (``_completed``, ...).
INTERNAL_PREFIX = "_"


def _spatial_array(name: str, data, attrs: dict, group_attrs: dict) -> Array | None:
    """``data`` (zarr or h5py) as a lazy ``Array`` at its world place, or None when it is not
    an image of two or more spatial axes."""
    leaf = name.rpartition("/")[2]
    try:
        metadata = read_spatial_metadata(attrs, group_attrs, leaf, len(data.shape))
        spec, _ = dataset_array_spec(data.shape, data.dtype, None, metadata, None,
                                     channels_first=True)
    except MetadataError:
        return None
    if spec.roi.dims < 2 or spec.roi.empty:
        return None
    chunks = getattr(data, "chunks", None) or "auto"
    return Array(da.from_array(data, chunks=chunks, name=False, lock=False), spec)


def _zarr_arrays(path: str) -> Iterator[tuple[str, object, dict, dict]]:
    import zarr

    root = zarr.open_group(path, mode="r")
    for name, node in sorted(root.members(max_depth=None)):
        if isinstance(node, zarr.Array):
            parent = name.rpartition("/")[0]
            group_attrs = dict(root[parent].attrs) if parent else dict(root.attrs)
            yield name, node, dict(node.attrs), group_attrs


def _hdf5_arrays(file) -> Iterator[tuple[str, object, dict, dict]]:
    import h5py

    names: list[str] = []
    file.visititems(lambda name, node: names.append(name)
                    if isinstance(node, h5py.Dataset) else None)
    for name in sorted(names):
        attrs = {k: np.asarray(v).tolist() for k, v in file[name].attrs.items()}
        yield name, file[name], attrs, {}


def _wanted(name: str, datasets: Sequence[str] | None) -> bool:
    if datasets is not None:
        return name in datasets or name.rpartition("/")[2] in datasets
    return not name.rpartition("/")[2].startswith(INTERNAL_PREFIX)


#: Panel order in a row: raw first, then labels, masks, and other images (predictions).
ORDER = {"raw": 0, "labels": 1, "mask": 2, "image": 3, "rgb": 3}


def _cropped(arrays: dict[str, Array], roi: Roi | None) -> dict[str, Array]:
    """The arrays cut to ``roi`` (grown to their voxel grids); those outside it dropped."""
    if roi is None:
        return arrays
    cropped = {}
    for name, array in arrays.items():
        part = array.spec.roi.intersect(roi.snap_to_grid(array.spec.voxel_size))
        if not part.empty:
            cropped[name] = array.crop(part)
    return cropped


def _row(title: str, arrays: dict[str, Array]) -> tuple[str, list[Panel]]:
    centre = common_centre(list(arrays.values()))
    panels = [array_panel(name, array, centre) for name, array in arrays.items()]
    rank = [ORDER["raw"] if "raw" in name.rpartition("/")[2].lower() else ORDER[panel.kind]
            for name, panel in zip(arrays, panels, strict=True)]
    return title, [panel for _, _, panel in sorted(zip(rank, range(len(panels)), panels,
                                                       strict=True))]


def _precomputed_rows(path: str, batches: Sequence[int] | None, max_rows: int,
                      datasets: Sequence[str] | None,
                      roi: Roi | None) -> list[tuple[str, list[Panel]]]:
    import zarr

    layout = read_layout(path)
    completed = np.flatnonzero(read_completed(path, layout.num_batches))
    indices = list(completed[:max_rows]) if batches is None else list(batches)
    for index in indices:
        if index not in completed:
            raise PipelineSetupError(
                f"show: batch {index} of {path} is not written ({len(completed)} of "
                f"{layout.num_batches} batches are complete)"
            )
    root = zarr.open_group(path, mode="r")
    rows = []
    for index in indices:
        arrays = {}
        for stored in layout.arrays:
            spec = stored.spec()
            if not _wanted(stored.name, datasets) or spec.roi is None or spec.roi.dims < 2:
                continue
            data = da.from_array(root[stored.name], chunks=root[stored.name].chunks)[index]
            arrays[stored.name] = Array(data, spec)
        rows.append(_row(f"{Path(path).name} batch {index}", _cropped(arrays, roi)))
    return rows


def stored_rows(path: str | os.PathLike, batches: Sequence[int] | None = None,
                max_rows: int = 4, datasets: Sequence[str] | None = None,
                stack: contextlib.ExitStack | None = None,
                roi: Roi | None = None) -> list[tuple[str, list[Panel]]]:
    """The rows of panels of one file: a precompute output gives one row per batch
    (``batches``, default the first ``max_rows`` written), any other zarr or HDF5 file one
    row of its arrays (``datasets``, default all but daskgp's bookkeeping), each cut to
    ``roi`` (world units) if given.

    HDF5 files stay open in ``stack`` until the panels are drawn.
    """
    import zarr

    path = os.fspath(path)
    if not os.path.exists(path) and "://" not in path:
        raise PipelineSetupError(f"show: {path} does not exist")
    if path.endswith(HDF5_SUFFIXES):
        import h5py

        file = h5py.File(path, "r")
        if stack is not None:
            stack.enter_context(file)
        found = _hdf5_arrays(file)
    else:
        try:
            if read_layout(path) is not None:
                return _precomputed_rows(path, batches, max_rows, datasets, roi)
        except LayoutError:
            pass  # a zarr group that is not a precompute output (no LAYOUT_ATTR)
        try:
            found = list(_zarr_arrays(path))
        except (FileNotFoundError, zarr.errors.BaseZarrError) as error:
            raise PipelineSetupError(f"show: {path} is neither a zarr group nor an HDF5 file "
                                     f"({type(error).__name__}: {error})") from error
    arrays = {}
    for name, data, attrs, group_attrs in found:
        if _wanted(name, datasets):
            array = _spatial_array(name, data, attrs, group_attrs)
            if array is not None:
                arrays[name] = array
    if not arrays:
        raise PipelineSetupError(f"show: {path} has no array with two or more spatial axes"
                                 + (f" named {list(datasets)}" if datasets else ""))
    inside = _cropped(arrays, roi)
    if not inside:
        raise PipelineSetupError(f"show: no array of {path} intersects the ROI {roi}")
    return [_row(Path(path).name, inside)]


def show(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
         batches: Sequence[int] | None = None, max_rows: int = 4,
         datasets: Sequence[str] | None = None, dpi: int = 100,
         roi: Roi | None = None) -> tuple[Path, int, int]:
    """Draw the mid-slices of the arrays stored in ``paths`` as a grid and write it to the
    PNG ``out``. Returns ``(out, rows, columns)``.

    Labels are coloured per id, masks and intensities grey; panels are in world units.
    See ``stored_rows`` for what each file contributes (``roi``: only that world region of
    each, so a prediction and its raw data line up); nothing is written but ``out``.

    Example:
        >>> show(["snapshots/250.zarr"], "grid.png")  # doctest: +SKIP
        (PosixPath('grid.png'), 1, 4)
    """
    out = Path(out)
    with contextlib.ExitStack() as stack:
        rows = [row for path in paths
                for row in stored_rows(path, batches, max_rows, datasets, stack, roi)]
        figure = grid_figure(rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(figure_png(figure, dpi=dpi))
    return out, len(rows), max(len(panels) for _, panels in rows)

