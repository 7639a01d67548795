"""Fast reads and writes of local zarr arrays through TensorStore, where it can open them.

zarr-python 3 runs every read and write on its event-loop thread: each call from a task costs
a round trip between threads (1-3 ms on two busy cores), which is most of a small tile's
time in ``daskgp predict``. TensorStore (Google's C++ library for zarr, N5 and
neuroglancer-precomputed) reads and writes the same files from the calling thread and
releases the GIL: 0.15 ms for a read of a 16x40x40 region, 0.14 ms for a write of one
8x32x32 float32 chunk, against 2.9 and 2.5 ms with zarr-python (``benchmarks/predict.py``'s
volumes, measured on this project's two-core machine).

The array is opened as zarr format 2 (``.zarray``) or 3 (``zarr.json``) on a local path,
without ``fsync`` on writes (as zarr-python, which does not sync either). Handles for writing
have no cache; handles for reading may share a cache of decoded chunks
(``DASKGP_ZARR_READ_CACHE`` bytes per process; off by default), which TensorStore revalidates
against the file at every read (a stat, not a decode), so every read still sees the files as
they are. It pays where reads overlap: neighbouring tiles of ``daskgp predict`` share source
chunks (a 34x132x132 tile of a volume in 64x128x128 chunks touches up to 8 of them), decoded
once instead of once per tile (1.9 instead of 3.5 CPU-ms a tile, ~2% of the convolution job
in ``benchmarks/predict.py``). It is off by default because training at random locations of a
large volume rarely hits it while it holds up to its size in memory: at 256 MiB the seed
pipeline's peak RSS went from 638 to 1,331 MiB (``benchmarks/first_steps.py``, its floor's own
cache included), above gunpowder's 1,141. Where TensorStore is not installed,
cannot open the array (a v2 array with filters, a codec it lacks, a remote or in-memory
store) or sees another shape, dtype or chunking than zarr-python, ``open_local`` returns None
and the caller uses zarr-python. ``DASKGP_ZARR_IO=zarr`` turns the fast path off.

Example:
    >>> handle = open_local("prediction.zarr", "pred", zarr_array, write=True)  # doctest: +SKIP
    >>> write(handle, (slice(0, 8), slice(0, 32)), block)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

logger = logging.getLogger(__name__)

_CONTEXTS: dict = {}
_CONTEXT_LOCK = threading.Lock()
#: Bytes of decoded chunks that read handles of one process keep by default
#: (``DASKGP_ZARR_READ_CACHE`` overrides it; e.g. ``268435456`` for 256 MiB).
READ_CACHE_BYTES = 0


def enabled() -> bool:
    """Whether the fast path may be used (TensorStore installed, not turned off)."""
    if os.environ.get("DASKGP_ZARR_IO", "").lower() == "zarr":
        return False
    try:
        import tensorstore  # noqa: F401
    except ImportError:
        return False
    return True


def read_cache_bytes() -> int:
    """Bytes of decoded chunks a process's read handles keep (``DASKGP_ZARR_READ_CACHE``, else
    ``READ_CACHE_BYTES``)."""
    return int(os.environ.get("DASKGP_ZARR_READ_CACHE", READ_CACHE_BYTES))


def new_context(cache_bytes: int):
    """A new TensorStore context with a cache of ``cache_bytes`` decoded chunks, without
    fsync (what the process's shared contexts are made of)."""
    import tensorstore as ts

    return ts.Context({"cache_pool": {"total_bytes_limit": cache_bytes},
                       "file_io_sync": False})


def _context(write: bool):
    """The process's TensorStore context for writing (no cache) or reading (the read cache)."""
    cache = 0 if write else read_cache_bytes()
    with _CONTEXT_LOCK:
        key = (os.getpid(), cache)
        if key not in _CONTEXTS:
            _CONTEXTS[key] = new_context(cache)
        return _CONTEXTS[key]


def open_local(store, dataset: str, zarr_array, write: bool = False, context=None):
    """A TensorStore handle on ``dataset`` of the local zarr container ``store`` (a path),
    or None where the fast path does not apply (see the module's docstring).

    ``zarr_array`` is the same array opened with zarr-python: the handle is used only if it
    agrees with it on shape, dtype and chunks. ``context``: a TensorStore context of the
    caller's own (``new_context``) instead of the process's shared one.
    """
    if not isinstance(store, str) or "://" in store or not enabled():
        return None
    path = os.path.join(store, dataset)
    if os.path.exists(os.path.join(path, ".zarray")):
        driver = "zarr"
    elif os.path.exists(os.path.join(path, "zarr.json")):
        driver = "zarr3"
    else:
        return None
    import tensorstore as ts

    try:
        handle = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": path}},
                         read=True, write=write, open=True,
                         context=_context(write) if context is None else context).result()
    except Exception as error:  # a codec or layout TensorStore lacks: zarr-python reads it
        logger.debug("zarr-python for %s: TensorStore cannot open it (%s)", path, error)
        return None
    chunks = handle.chunk_layout.write_chunk.shape
    if (tuple(handle.shape) != tuple(zarr_array.shape)
            or np.dtype(handle.dtype.numpy_dtype) != np.dtype(zarr_array.dtype)
            or tuple(chunks) != tuple(zarr_array.chunks)
            or tuple(handle.domain.origin) != (0,) * len(handle.shape)):
        logger.debug("zarr-python for %s: TensorStore sees another layout", path)
        return None
    return handle


def plain(selection, shape) -> bool:
    """Whether ``selection`` means the same to TensorStore as to zarr-python: one slice per
    axis, step 1, bounds inside the array (numpy's negative and clipped bounds are not
    TensorStore's)."""
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return False
    for index, size in zip(selection, shape, strict=True):
        if not isinstance(index, slice) or index.step not in (None, 1):
            return False
        start = 0 if index.start is None else index.start
        stop = size if index.stop is None else index.stop
        if not 0 <= start <= stop <= size:
            return False
    return True


def read(handle, selection: tuple[slice, ...]) -> np.ndarray:
    """``selection`` of the array (``plain`` slices), read into memory."""
    return np.asarray(handle[selection].read().result())


def write(handle, selection: tuple[slice, ...], value) -> None:
    """Write ``value`` (cast to the array's dtype and broadcast, as zarr-python does) into
    ``selection`` (``plain`` slices)."""
    view = handle[selection]
    data = np.asarray(value).astype(handle.dtype.numpy_dtype, copy=False)
    view.write(np.broadcast_to(data, tuple(view.shape))).result()
