"""``ZarrReader``: a small picklable handle on one zarr array (format 2 or 3).

It travels inside dask tasks; each process opens the array on first use and keeps it.
"""

from __future__ import annotations

import itertools
import os
import posixpath
from typing import Any

import numpy as np
import zarr
import zarr.errors
from zarr.abc.store import Store

from ..errors import SourceError
from . import tensorstore_io
from .process_cache import ProcessCache

_ARRAYS = ProcessCache()
_FAST = ProcessCache()  # TensorStore handles, or None where zarr-python reads

# What zarr raises when a path holds no array (missing, or a group).
_NOT_AN_ARRAY = (
    zarr.errors.ArrayNotFoundError,
    zarr.errors.NodeNotFoundError,
    zarr.errors.NodeTypeValidationError,
    zarr.errors.GroupNotFoundError,
    FileNotFoundError,
    KeyError,
)


def _is_local_path(store: str) -> bool:
    return "://" not in store


class ZarrReader:
    """Read one array of a zarr store (format 2 or 3), lazily and once per process.

    The reader holds only ``(store, dataset)``; the zarr array is opened on first use in each
    process (path stores share one open array per process) and dropped when pickled.

    Args:
        store (str, os.PathLike or zarr Store): a path or URL of the zarr container, or a
            zarr ``Store`` object. A ``Store`` object travels to worker processes by pickling:
            it must be picklable (and mean the same data there) for the ``"processes"`` and
            ``distributed`` schedulers; otherwise use it with ``"sync"``/``"threads"`` only.
        dataset (str): the path of the array inside the store, e.g. ``"volumes/raw"``.

    Example:
        >>> reader = ZarrReader("sample.zarr", "volumes/raw")  # doctest: +SKIP
        >>> reader.read((slice(0, 4), slice(0, 8), slice(0, 8))).shape  # doctest: +SKIP
        (4, 8, 8)
    """

    def __init__(self, store: str | os.PathLike | Store, dataset: str) -> None:
        if isinstance(store, (str, os.PathLike)):
            store = os.fspath(store)
            if _is_local_path(store):
                store = os.path.abspath(store)
        self.store = store
        self.dataset = str(dataset).strip("/")
        self._array: zarr.Array | None = None

    # --- opening ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store, as named in error messages."""
        return self.store if isinstance(self.store, str) else repr(self.store)

    def open(self) -> zarr.Array:
        """The zarr array (opened on first use in this process)."""
        if self._array is None:
            if isinstance(self.store, str):
                self._array = _ARRAYS.get((self.store, self.dataset), self._open)
            else:
                self._array = self._open()
        return self._array

    def _open(self) -> zarr.Array:
        if isinstance(self.store, str) and _is_local_path(self.store):
            if not os.path.exists(self.store):
                raise SourceError(
                    f"zarr store {self.store} does not exist (asked for dataset {self.dataset!r})"
                )
        try:
            return zarr.open_array(self.store, path=self.dataset, mode="r")
        except _NOT_AN_ARRAY as error:
            raise SourceError(
                f"dataset {self.dataset!r} is not an array in zarr store {self.location} "
                f"({type(error).__name__}: {error})"
            ) from error

    def close(self) -> None:
        """Forget the open array in this process (zarr arrays hold no file handles)."""
        self._array = None
        if isinstance(self.store, str):
            _ARRAYS.close((self.store, self.dataset))
            _FAST.close((self.store, self.dataset))

    # --- what the array is --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape in storage order."""
        return tuple(self.open().shape)

    @property
    def dtype(self) -> np.dtype:
        """The array's numpy dtype."""
        return np.dtype(self.open().dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The storage chunk shape: each read task reads within one of these."""
        return tuple(self.open().chunks)

    @property
    def attrs(self) -> dict[str, Any]:
        """The array's attributes."""
        return dict(self.open().attrs)

    @property
    def parent_attrs(self) -> dict[str, Any]:
        """The attributes of the group holding the array (``{}`` if it has none)."""
        parent = posixpath.dirname(self.dataset)
        try:
            group = zarr.open_group(self.store, path=parent, mode="r")
        except (*_NOT_AN_ARRAY, zarr.errors.ContainsArrayError, ValueError):
            return {}
        return dict(group.attrs)

    # --- reading ------------------------------------------------------------------------------

    def read(self, selection: tuple[slice, ...]) -> np.ndarray:
        """Read ``selection`` (one slice per storage axis) into memory (through TensorStore
        where it opens the array: ``daskgp.io.tensorstore_io``)."""
        array = self.open()
        if isinstance(self.store, str):
            fast = _FAST.get((self.store, self.dataset),
                             lambda: tensorstore_io.open_local(self.store, self.dataset, array))
            if fast is not None and tensorstore_io.plain(selection, array.shape):
                return tensorstore_io.read(fast, selection)
        return np.asarray(array[selection])

    def _chunk_indices(self, selection: tuple[slice, ...]):
        """The grid indices of the chunks that ``selection`` overlaps."""
        ranges = [range(s.start // c, max(s.start // c + 1, -(-s.stop // c)))
                  for s, c in zip(selection, self.open().chunks, strict=True)]
        return itertools.product(*ranges)

    def chunk_keys(self, selection: tuple[slice, ...]) -> list[str]:
        """The store keys of the chunks that ``selection`` overlaps (for error messages)."""
        array = self.open()
        return [f"{self.dataset}/{array.metadata.encode_chunk_key(index)}"
                for index in self._chunk_indices(selection)]

    def damaged_chunk_keys(self, selection: tuple[slice, ...]) -> list[str]:
        """The store keys of the chunks overlapping ``selection`` that fail to read, each read
        on its own (a read task holds several chunks; only the error path pays for this)."""
        array = self.open()
        damaged = []
        for index in self._chunk_indices(selection):
            part = tuple(slice(max(s.start, i * c), min(s.stop, (i + 1) * c))
                         for s, i, c in zip(selection, index, array.chunks, strict=True))
            try:
                array[part]
            except Exception:
                damaged.append(f"{self.dataset}/{array.metadata.encode_chunk_key(index)}")
        return damaged

    def chunk_exists(self, index: tuple[int, ...]) -> bool:
        """Whether the chunk at grid ``index`` is stored (a missing one reads as fill value)."""
        from zarr.core.sync import sync

        array = self.open()
        return bool(sync((array.store_path / array.metadata.encode_chunk_key(index)).exists()))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.location, self.dataset)

    def __repr__(self) -> str:
        return f"ZarrReader({self.location!r}, {self.dataset!r})"
