"""The completion record of a ``daskgp precompute`` output: a mark per batch and each batch's
checksum per array, stored in chunks of ``RECORD_CHUNK`` batches and read and written a chunk
at a time, so that a job of a million batches never holds (or reads at start) more than the
chunks its window of batches touches.

Only the job that holds the output's lock writes the record (the driver, a few times a second,
as batches finish; see ``daskgp.io.tile_record`` for ``predict``'s), so marks never race; a
mark is written after its batch's data and checksums, so a job killed between the two only
recomputes that batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import zarr

from .tile_record import FLUSH_S, RECORD_CHUNK

#: uint8 array (batches,): 1 once the batch's data is written.
COMPLETED = "_completed"
#: uint32 array (batches x arrays): each stored batch's checksum (``data_checksum``) per array.
CHECKSUMS = "_checksums"

__all__ = ["CHECKSUMS", "COMPLETED", "RECORD_CHUNK", "BatchRecord", "record_chunks"]


def _open(path: str, name: str, mode: str) -> zarr.Array | None:
    try:
        return zarr.open_array(path, path=name, mode=mode)
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        return None


def record_chunks(path: str, num_batches: int, start: int = 0
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """``(first batch, marks, checksums)`` for each stored chunk of the record of output
    ``path`` from the chunk holding batch ``start`` on, read one chunk at a time: ``marks`` a
    bool per batch, ``checksums`` (batches x arrays) or None when the output has none (written
    before precompute stored them). Batches past the stored record read as not written.

    Works on any chunking of the record (layout 1 had one chunk per batch).

    Example:
        >>> for first, marks, _ in record_chunks("batches.zarr", 10**6):  # doctest: +SKIP
        ...     print(first, marks.sum())
    """
    completed = _open(path, COMPLETED, "r")
    checksums = _open(path, CHECKSUMS, "r")
    stored = 0 if completed is None else int(completed.shape[0])
    size = RECORD_CHUNK if completed is None else int(completed.chunks[0])
    # Layout-1 records have one chunk per batch: read them RECORD_CHUNK batches at a time.
    size = size * max(1, RECORD_CHUNK // size)
    for first in range(start - start % size, num_batches, size):
        stop = min(first + size, num_batches)
        marks = np.zeros(stop - first, bool)
        sums = None
        if first < stored:
            end = min(stop, stored)
            marks[:end - first] = np.asarray(completed[first:end]).astype(bool)
            if checksums is not None:
                sums = np.zeros((stop - first, checksums.shape[1]), np.uint32)
                sums[:end - first] = np.asarray(checksums[first:end])
        yield first, marks, sums


class BatchRecord:
    """The record of one precompute job, written by its driver: ``pending`` walks the chunks
    lazily, ``mark`` notes a finished batch, ``flush`` writes the chunks that changed.

    In memory: the chunks of the batches in flight and the one being walked, whatever the
    number of batches. The ``_completed``/``_checksums`` arrays must exist (``precompute``
    creates them with chunks of ``RECORD_CHUNK`` batches).

    Args:
        path (str): the precompute output.
        num_batches (int): batches of the job.

    Example:
        >>> record = BatchRecord("batches.zarr", 10**6)  # doctest: +SKIP
        >>> for index in record.pending():  # doctest: +SKIP
        ...     record.mark(index, checksums_of(index)); record.flush(force=False)
        >>> record.flush()  # doctest: +SKIP
    """

    def __init__(self, path: str, num_batches: int) -> None:
        self.path = path
        self.num_batches = num_batches
        self._completed = zarr.open_array(path, path=COMPLETED, mode="r+")
        self._checksums = zarr.open_array(path, path=CHECKSUMS, mode="r+")
        self.chunk = int(self._completed.chunks[0])
        #: chunk index -> (marks, checksums) of the chunks held.
        self._held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._outstanding: Counter[int] = Counter()  # batches handed out, not yet marked
        self._dirty: set[int] = set()
        self._walking = -1
        self._last_flush = time.monotonic()

    def pending(self, start: int = 0,
                on_complete: Callable[[int], None] | None = None) -> Iterator[int]:
        """The batches from ``start`` on without a mark, lazily; ``on_complete(n)`` is told
        how many marked ones each chunk holds (a progress bar)."""
        for first, marks, sums in record_chunks(self.path, self.num_batches, start):
            chunk = first // self.chunk
            if sums is None:
                sums = np.zeros((len(marks), self._checksums.shape[1]), np.uint32)
            self._held[chunk] = (marks, sums)
            self._walking = chunk
            offset = max(0, start - first)
            if on_complete is not None and marks[offset:].any():
                on_complete(int(marks[offset:].sum()))
            for i in np.flatnonzero(~marks[offset:]):
                self._outstanding[chunk] += 1
                yield first + offset + int(i)
            self._walking = -1
            self._release(chunk)

    def mark(self, index: int, checksums: Sequence[int]) -> None:
        """Record batch ``index`` (handed out by ``pending``) as written with ``checksums``
        (one per array)."""
        chunk = index // self.chunk
        marks, sums = self._held[chunk]
        marks[index - chunk * self.chunk] = True
        sums[index - chunk * self.chunk] = checksums
        self._outstanding[chunk] -= 1
        self._dirty.add(chunk)

    def flush(self, force: bool = True) -> None:
        """Write the chunks with new marks (unless ``force`` is False and the last flush was
        under ``FLUSH_S`` ago), checksums first, so a mark always has its checksum; then let
        go of the chunks that are done."""
        if not self._dirty or (not force and time.monotonic() - self._last_flush < FLUSH_S):
            return
        for chunk in sorted(self._dirty):
            marks, sums = self._held[chunk]
            region = slice(chunk * self.chunk, chunk * self.chunk + len(marks))
            self._checksums[region] = sums
            self._completed[region] = marks.astype(np.uint8)
        dirty, self._dirty = self._dirty, set()
        self._last_flush = time.monotonic()
        for chunk in dirty:
            self._release(chunk)

    def _release(self, chunk: int) -> None:
        if (chunk != self._walking and not self._outstanding[chunk]
                and chunk not in self._dirty):
            self._held.pop(chunk, None)
            del self._outstanding[chunk]

    @property
    def chunks_held(self) -> int:
        """How many chunks of the record are in memory (bounded by the window)."""
        return len(self._held)
