"""Writing arrays block by block into zarr and HDF5 datasets from dask tasks.

Picklable writers that open their dataset in the process that writes, dataset creation with
world metadata (``resolution``/``offset``, OME-NGFF 0.4), and one write task per output chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..errors import DaskgpError, PipelineSetupError, TaskError
from . import tensorstore_io
from .checksums import block_checksum
from .metadata import ome_ngff_group_attrs
from .translation import current_shift, voxel_shift
from .writers import ome_ngff_multiscales

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads of one process are still serialised
    fcntl = None


@dataclass(frozen=True)
class DatasetLayout:
    """What a dataset to write is: shape and dtype in storage, chunks (None: contiguous), voxel
    size and offset in world units (spatial axes only; leading axes are channels).

    Example:
        >>> layout = DatasetLayout((2, 10, 10), np.dtype("float32"), (2, 4, 4), (2, 2), (0, 8))
        >>> layout.describe()
        'shape (2, 10, 10), dtype float32, resolution [2, 2], offset [0, 8]'
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...] | None
    voxel_size: tuple[int, ...]
    offset: tuple[int, ...]

    def describe(self) -> str:
        """Shape, dtype and world metadata, for error messages."""
        return (f"shape {tuple(self.shape)}, dtype {np.dtype(self.dtype)}, resolution "
                f"{list(self.voxel_size)}, offset {list(self.offset)}")

    def mismatch(self, other: DatasetLayout) -> bool:
        """True if ``other`` differs in shape, dtype, voxel size or offset (not chunks)."""
        return ((tuple(self.shape), np.dtype(self.dtype), tuple(self.voxel_size),
                 tuple(self.offset))
                != (tuple(other.shape), np.dtype(other.dtype), tuple(other.voxel_size),
                    tuple(other.offset)))


def _world_attrs(layout: DatasetLayout) -> dict:
    return {"resolution": [int(v) for v in layout.voxel_size],
            "offset": [int(o) for o in layout.offset]}


def _existing_layout(shape, dtype, chunks, attrs: dict, expected: DatasetLayout) -> DatasetLayout:
    # A dataset without world attributes is taken at the expected place (gunpowder's default).
    voxel_size = tuple(int(v) for v in attrs.get("resolution", expected.voxel_size))
    offset = tuple(int(o) for o in attrs.get("offset", expected.offset))
    return DatasetLayout(tuple(shape), np.dtype(dtype), None if chunks is None else tuple(chunks),
                         voxel_size, offset)


def mismatch_error(location: str, dataset: str, existing: DatasetLayout,
                   expected: DatasetLayout) -> PipelineSetupError:
    """The error for a dataset that exists with another layout than a write needs."""
    return PipelineSetupError(
        f"dataset {dataset!r} in {location} exists with {existing.describe()}, but this write "
        f"needs {expected.describe()}; it was left untouched (remove it, or write elsewhere)"
    )


class ZarrArrayWriter:
    """Write blocks of one array of a zarr container; opened on first use in each process.

    New containers are zarr format 2 with gunpowder's ``resolution``/``offset`` attributes and
    an OME-NGFF 0.4 ``multiscales`` entry in the parent group (napari, neuroglancer and
    gunpowder open them); arrays in an existing format-3 container are created as format 3.

    Args:
        store (str, os.PathLike or zarr Store): the container. A ``Store`` object is pickled
            into each write task: with the ``"processes"`` or ``distributed`` schedulers it must
            be picklable and mean the same storage in the workers.
        dataset (str): the array's path inside the container.

    Example:
        >>> writer = ZarrArrayWriter("prediction.zarr", "volumes/pred")
        >>> writer.dataset
        'volumes/pred'
    """

    def __init__(self, store, dataset: str) -> None:
        if isinstance(store, (str, os.PathLike)):
            store = os.fspath(store)
            if "://" not in store:
                store = os.path.abspath(store)
        self.store = store
        self.dataset = str(dataset).strip("/")
        self._array = None
        self._fast = None  # a TensorStore handle where one opens (daskgp.io.tensorstore_io)

    @property
    def location(self) -> str:
        """The container, as named in error messages."""
        return self.store if isinstance(self.store, str) else repr(self.store)

    def _root(self, create: bool):
        import zarr

        try:
            return zarr.open_group(self.store, mode="r+")
        except FileNotFoundError:
            if not create:
                return None
            return zarr.open_group(self.store, mode="a", zarr_format=2)

    def existing(self, expected: DatasetLayout) -> DatasetLayout | None:
        """The layout of the dataset if it exists, else None (in the driver, cheap)."""
        import zarr

        root = self._root(create=False)
        if root is None or self.dataset not in root:
            return None
        node = root[self.dataset]
        if not isinstance(node, zarr.Array):
            raise PipelineSetupError(
                f"{self.dataset!r} in {self.location} is a group, not an array; it was left "
                "untouched"
            )
        return _existing_layout(node.shape, node.dtype, node.chunks, dict(node.attrs), expected)

    def require(self, layout: DatasetLayout, compression=None) -> DatasetLayout:
        """The dataset's layout, creating the dataset with ``layout`` if it does not exist;
        raises ``PipelineSetupError`` (touching nothing) if it exists with another layout."""
        existing = self.existing(layout)
        if existing is not None:
            if existing.mismatch(layout):
                raise mismatch_error(self.location, self.dataset, existing, layout)
            return existing
        from numcodecs import GZip, get_codec

        root = self._root(create=True)
        if compression is None:
            compressor = "auto"
        elif isinstance(compression, int):
            compressor = GZip(level=compression)
        else:
            compressor = get_codec({"id": compression})
        array = root.create_array(self.dataset, shape=layout.shape, dtype=layout.dtype,
                                  chunks=layout.chunks, compressors=compressor, fill_value=0)
        array.attrs.update(_world_attrs(layout))
        if root.metadata.zarr_format == 2:
            self._add_multiscales(root, layout)
        return layout

    def _add_multiscales(self, root, layout: DatasetLayout) -> None:
        parent, _, leaf = self.dataset.rpartition("/")
        group = root.require_group(parent) if parent else root
        entry = ome_ngff_multiscales(leaf, len(layout.shape), layout.voxel_size, layout.offset)
        entries = [e for e in group.attrs.get("multiscales", []) if e.get("name") != leaf]
        group.attrs.update(ome_ngff_group_attrs(
            parent, [*entries, *([entry] if entry is not None else [])], group.attrs))

    def __setitem__(self, selection: tuple[slice, ...], value: np.ndarray) -> None:
        if self._array is None:
            import zarr

            array = zarr.open_array(self.store, path=self.dataset, mode="r+")
            self._fast = tensorstore_io.open_local(self.store, self.dataset, array, write=True)
            self._array = array
        if self._fast is not None and tensorstore_io.plain(selection, self._array.shape):
            tensorstore_io.write(self._fast, selection, value)
        else:
            self._array[selection] = value

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = state["_fast"] = None
        return state

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.location, self.dataset)

    def __repr__(self) -> str:
        return f"ZarrArrayWriter({self.location!r}, {self.dataset!r})"


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def hdf5_file_lock(filename: str) -> Iterator[None]:
    """Hold the write lock of HDF5 file ``filename``: one writer at a time among the threads
    of this process (a lock per file) and among the processes of this host (``flock`` on a
    lock file in the temporary folder, named after the file's absolute path).

    h5py cannot write one file from several processes at once, so every write takes this
    lock. Hosts do not share it: workers on several machines must not write one HDF5 file.
    """
    filename = os.path.abspath(filename)
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(filename, threading.Lock())
    with lock:
        if fcntl is None:
            yield
            return
        digest = hashlib.sha1(filename.encode()).hexdigest()[:16]
        path = os.path.join(tempfile.gettempdir(), f"daskgp-hdf5-{digest}.lock")
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Hdf5ArrayWriter:
    """Write blocks of one HDF5 dataset; every write opens the file under ``hdf5_file_lock``.

    The file is opened for each write and closed after it, so that writers in other
    processes (which wait on the lock) can open it in turn.

    Args:
        filename (str or os.PathLike): the HDF5 file (created if missing).
        dataset (str): the dataset's path inside the file.

    Example:
        >>> Hdf5ArrayWriter("prediction.hdf", "pred").dataset
        'pred'
    """

    def __init__(self, filename, dataset: str) -> None:
        self.filename = os.path.abspath(os.fspath(filename))
        self.dataset = str(dataset).strip("/")

    @property
    def location(self) -> str:
        """The file, as named in error messages."""
        return self.filename

    def existing(self, expected: DatasetLayout) -> DatasetLayout | None:
        """The layout of the dataset if it exists, else None."""
        import h5py

        if not os.path.exists(self.filename):
            return None
        with hdf5_file_lock(self.filename), h5py.File(self.filename, "r") as file:
            node = file.get(self.dataset)
            if node is None:
                return None
            if not isinstance(node, h5py.Dataset):
                raise PipelineSetupError(
                    f"{self.dataset!r} in {self.filename} is a group, not a dataset; it was left "
                    "untouched"
                )
            attrs = {k: np.asarray(v).tolist() for k, v in node.attrs.items()}
            return _existing_layout(node.shape, node.dtype, node.chunks, attrs, expected)

    def require(self, layout: DatasetLayout, compression=None) -> DatasetLayout:
        """The dataset's layout, creating it with ``layout`` if missing; raises
        ``PipelineSetupError`` (touching nothing) if it exists with another layout."""
        import h5py

        existing = self.existing(layout)
        if existing is not None:
            if existing.mismatch(layout):
                raise mismatch_error(self.filename, self.dataset, existing, layout)
            return existing
        os.makedirs(os.path.dirname(self.filename), exist_ok=True)
        chunks = None if layout.chunks is None else tuple(
            min(c, s) for c, s in zip(layout.chunks, layout.shape, strict=True))
        with hdf5_file_lock(self.filename), h5py.File(self.filename, "a") as file:
            dataset = file.create_dataset(self.dataset, shape=layout.shape, dtype=layout.dtype,
                                          chunks=chunks, compression=compression, fillvalue=0)
            for name, value in _world_attrs(layout).items():
                dataset.attrs[name] = value
        return DatasetLayout(layout.shape, layout.dtype, chunks, layout.voxel_size,
                             layout.offset)

    def __setitem__(self, selection: tuple[slice, ...], value: np.ndarray) -> None:
        import h5py

        with hdf5_file_lock(self.filename), h5py.File(self.filename, "a") as file:
            file[self.dataset][selection] = value

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.filename, self.dataset)

    def __repr__(self) -> str:
        return f"Hdf5ArrayWriter({self.filename!r}, {self.dataset!r})"


class _BlockWrite:
    """Task of ``write_blocks``: writes one block at its place in the dataset and returns the
    block's checksum (``block_checksum`` of its voxel position and bytes)."""

    def __init__(self, writer, start: tuple[int, ...], node_name: str,
                 voxel_size: tuple[int, ...] | None = None) -> None:
        self.writer = writer
        self.start = start
        self.node_name = node_name
        self.voxel_size = voxel_size

    def __call__(self, block: np.ndarray, block_info=None) -> np.ndarray:
        location = block_info[0]["array-location"]
        start = self.start
        if self.voxel_size is not None and current_shift() is not None:
            ndim, dims = len(start), len(self.voxel_size)
            offsets = voxel_shift(ndim, range(ndim - dims, ndim), self.voxel_size)
            start = tuple(s + o for s, o in zip(start, offsets, strict=True))
        selection = tuple(slice(s + a, s + b) for s, (a, b) in zip(start, location,
                                                                  strict=True))
        try:
            self.writer[selection] = block
        except DaskgpError:
            raise
        except Exception as error:
            raise TaskError(
                f"{self.node_name}: writing {selection} of {self.writer!r} failed with "
                f"{type(error).__name__}: {error}"
            ) from error
        checksum = block_checksum([s.start for s in selection], block)
        return np.full((1,) * block.ndim, checksum, dtype=np.int64)

    def __dask_tokenize__(self) -> tuple:
        return ("_BlockWrite", tokenize(self.writer), self.start, self.node_name,
                self.voxel_size)


def write_blocks(data: da.Array, writer, start: Sequence[int], chunks: Sequence[int] | None,
                 node_name: str, prefix: str,
                 voxel_size: Sequence[int] | None = None) -> da.Array:
    """A lazy write of ``data`` into ``writer``'s dataset at voxel ``start``.

    ``data`` is rechunked to the dataset's ``chunks`` (``start`` must lie on their grid, so
    each dask block is exactly one stored chunk, and each stored chunk is written by exactly
    one task); None (a contiguous HDF5 dataset) keeps ``data``'s chunks. Tasks are named
    ``f"{prefix}-{token}"``. Returns the side effect to compute with the batch: a small dask
    array, one element per block, the block's checksum (``block_checksum`` of its voxel
    position and bytes; ``daskgp verify`` recomputes them). With ``voxel_size`` (of the
    trailing, spatial axes) the writes follow a tile's translation
    (``daskgp.io.translation``). An array rather than a ``Delayed``,
    because wrapping an array in ``dask.delayed`` builds its whole graph at once, which costs
    more than planning the batch; as an array it stays lazy and is optimized with the batch.

    Example:
        >>> class Memory(dict):
        ...     def __setitem__(self, selection, value):
        ...         super().__setitem__(str(selection), value.copy())
        >>> memory = Memory()
        >>> write = write_blocks(da.ones((6,)), memory, (4,), (4,), "Example", "example")
        >>> checksums = write.compute(scheduler="sync").tolist()
        >>> checksums[1] == block_checksum((8,), np.ones(2)), sorted(memory)
        (True, ['(slice(4, 8, None),)', '(slice(8, 10, None),)'])
    """
    start = tuple(int(s) for s in start)
    if chunks is not None:
        chunks = da.core.normalize_chunks(tuple(chunks), data.shape)
        if data.chunks != chunks:
            data = data.rechunk(chunks)
    token = tokenize(data.name, writer, start)
    voxel_size = None if voxel_size is None else tuple(int(v) for v in voxel_size)
    return da.map_blocks(
        _BlockWrite(writer, start, node_name, voxel_size), data,
        chunks=tuple((1,) * len(c) for c in data.chunks), dtype=np.int64,
        meta=np.empty((0,) * data.ndim, dtype=np.int64), name=f"{prefix}-{token}",
    )

