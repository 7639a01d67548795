"""``Hdf5Reader``: a small picklable handle on one HDF5 dataset.

h5py objects do not pickle, so tasks carry ``(filename, dataset)`` and each process opens the
file once; h5py's own global lock serialises reads from threads.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

import h5py
import numpy as np

from ..errors import SourceError
from .process_cache import ProcessCache

_FILES = ProcessCache(close=lambda file: file.close())


def _plain(value: Any) -> Any:
    """HDF5 attribute values (numpy arrays and scalars, bytes) as plain Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class Hdf5Reader:
    """Read one dataset of an HDF5 file, lazily and once per process.

    The reader holds only ``(filename, dataset)``. Each process opens the file read-only on
    first use and shares that handle between all readers of the file; a file that was
    rewritten since (other inode or modification time) is reopened.

    Args:
        filename (str or os.PathLike): the HDF5 file.
        dataset (str): the dataset's path inside the file, e.g. ``"volumes/raw"``.

    Example:
        >>> reader = Hdf5Reader("sample.hdf", "volumes/raw")  # doctest: +SKIP
        >>> reader.read((slice(0, 4), slice(0, 8), slice(0, 8))).shape  # doctest: +SKIP
        (4, 8, 8)
    """

    def __init__(self, filename: str | os.PathLike, dataset: str) -> None:
        self.filename = os.path.abspath(os.fspath(filename))
        self.dataset = str(dataset).strip("/")

    # --- opening ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The file, as named in error messages."""
        return self.filename

    def _file(self) -> h5py.File:
        try:
            stat = os.stat(self.filename)
        except FileNotFoundError as error:
            raise SourceError(
                f"HDF5 file {self.filename} does not exist (asked for dataset {self.dataset!r})"
            ) from error
        signature = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return _FILES.get(self.filename, self._open_file, signature)

    def _open_file(self) -> h5py.File:
        try:
            return h5py.File(self.filename, "r")
        except OSError as error:
            raise SourceError(
                f"cannot open HDF5 file {self.filename} (asked for dataset {self.dataset!r}): "
                f"{error}"
            ) from error

    def open(self) -> h5py.Dataset:
        """The h5py dataset (its file opened on first use in this process)."""
        file = self._file()
        node = file.get(self.dataset or "/")
        if not isinstance(node, h5py.Dataset):
            what = "does not exist" if node is None else f"is a {type(node).__name__}"
            raise SourceError(
                f"dataset {self.dataset!r} {what} in HDF5 file {self.filename}; "
                f"it has {list(file.keys())} at its root"
            )
        return node

    def close(self) -> None:
        """Close this process's handle on the file (it is reopened when needed)."""
        _FILES.close(self.filename)

    # --- what the dataset is ------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The dataset's shape in storage order."""
        return tuple(self.open().shape)

    @property
    def dtype(self) -> np.dtype:
        """The dataset's numpy dtype."""
        return np.dtype(self.open().dtype)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The HDF5 chunk shape, or None for a contiguous dataset."""
        chunks = self.open().chunks
        return None if chunks is None else tuple(chunks)

    @property
    def attrs(self) -> dict[str, Any]:
        """The dataset's attributes, as plain Python values."""
        return {name: _plain(value) for name, value in self.open().attrs.items()}

    @property
    def parent_attrs(self) -> dict[str, Any]:
        """The attributes of the group holding the dataset."""
        parent = self._file().get(posixpath.dirname(self.dataset) or "/")
        if parent is None:
            return {}
        return {name: _plain(value) for name, value in parent.attrs.items()}

    # --- reading ------------------------------------------------------------------------------

    def read(self, selection: tuple[slice, ...]) -> np.ndarray:
        """Read ``selection`` (one slice per storage axis) into memory."""
        return np.asarray(self.open()[selection])

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.filename, self.dataset)

    def __repr__(self) -> str:
        return f"Hdf5Reader({self.filename!r}, {self.dataset!r})"
