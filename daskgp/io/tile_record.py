"""The completion record of a ``daskgp predict`` job, kept in its output: a bitmap of finished
tiles and one checksum per tile and output, written by the driver in batches of marks.

Only the job that holds the output's lock writes it, so marks never race; a mark is written
after the tile's blocks, so a job killed between the two only recomputes that tile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import zarr

from ..errors import PipelineSetupError
from .checksums import checksum_algorithm

#: uint8 array in the output, one element per tile (C order of the grid): 1 once written.
COMPLETED_TILES = "_completed_tiles"
#: uint32 array (tiles x outputs): the checksum of the blocks each tile wrote of each output.
TILE_CHECKSUMS = "_tile_checksums"
#: Tiles per stored chunk of the record.
RECORD_CHUNK = 4096
#: Seconds between writes of the marks of finished tiles.
FLUSH_S = 0.25


def open_record(path: str):
    """The ``_completed_tiles`` array of output ``path``, or None."""
    try:
        return zarr.open_array(path, path=COMPLETED_TILES, mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        return None


class TileRecord:
    """Marks and checksums of the tiles of one job, in memory (1 + 4 x outputs bytes a tile)
    and in the output; ``flush`` writes the chunks that changed.

    Args:
        path (str): the output zarr container.
        num_tiles (int): tiles of the job.
        attrs (dict): what the record says about the job (identity, tiling, outputs), stored
            as the attributes of ``_completed_tiles``.
        num_outputs (int): checksum columns.

    Example:
        >>> record = TileRecord.require("prediction.zarr", 27, {"job": "abc"}, 1)  # doctest: +SKIP
        >>> record.mark(3, (12345,)); record.flush()  # doctest: +SKIP
    """

    def __init__(self, path: str, completed: np.ndarray, checksums: np.ndarray,
                 algorithm: str | None = None) -> None:
        self.path = path
        self.completed = completed
        self.checksums = checksums
        #: How the tiles' block checksums are made (``daskgp.io.checksums``): the record's
        #: ``checksum`` attribute, ``"crc32"`` for records that predate it.
        self.algorithm = checksum_algorithm(algorithm, path)
        self._dirty: set[int] = set()
        self._last_flush = time.monotonic()
        self._completed_array = zarr.open_array(path, path=COMPLETED_TILES, mode="r+")
        self._checksum_array = zarr.open_array(path, path=TILE_CHECKSUMS, mode="r+")

    @classmethod
    def require(cls, path: str, num_tiles: int, attrs: dict, num_outputs: int) -> TileRecord:
        """The record of output ``path``, created (all tiles pending) if missing; raises
        ``PipelineSetupError`` if it exists for another grid of tiles, or names a checksum
        algorithm this daskgp does not know. An existing record keeps its algorithm (its
        ``checksum`` attribute), so that a resumed job's new tiles are checked like its old
        ones."""
        try:
            root = zarr.open_group(path, mode="r+")
        except FileNotFoundError:  # a new output: zarr format 2, as ZarrWrite makes them
            root = zarr.open_group(path, mode="a", zarr_format=2)
        chunk = max(1, min(num_tiles, RECORD_CHUNK))
        if COMPLETED_TILES in root:
            record = root[COMPLETED_TILES]
            if record.shape != (num_tiles,) or record.attrs.get("grid_shape") != attrs.get(
                    "grid_shape"):
                raise PipelineSetupError(
                    f"predict: {path} records {record.shape[0]} tiles in a grid of "
                    f"{record.attrs.get('grid_shape')}, but this job has {num_tiles} in "
                    f"{attrs.get('grid_shape')}; nothing was written (write elsewhere, or "
                    "rerun with --overwrite)"
                )
            completed = np.asarray(record[:]).astype(bool)
            algorithm = record.attrs.get("checksum")
        else:
            root.create_array(COMPLETED_TILES, shape=(num_tiles,), chunks=(chunk,),
                              dtype=np.uint8, fill_value=0, attributes=attrs)
            completed = np.zeros(num_tiles, bool)
            algorithm = attrs.get("checksum")
        if TILE_CHECKSUMS in root and root[TILE_CHECKSUMS].shape == (num_tiles, num_outputs):
            checksums = np.asarray(root[TILE_CHECKSUMS][:], dtype=np.uint32)
        else:
            root.create_array(TILE_CHECKSUMS, shape=(num_tiles, num_outputs),
                              chunks=(chunk, num_outputs), dtype=np.uint32, fill_value=0,
                              overwrite=True)
            checksums = np.zeros((num_tiles, num_outputs), np.uint32)
        return cls(path, completed, checksums, algorithm)

    @property
    def chunk(self) -> int:
        """Tiles per stored chunk."""
        return int(self._completed_array.chunks[0])

    def mark(self, index: int, checksums: Sequence[int]) -> None:
        """Record tile ``index`` as written with ``checksums`` (one per output)."""
        self.completed[index] = True
        self.checksums[index] = checksums
        self._dirty.add(index // self.chunk)

    def flush(self, force: bool = True) -> None:
        """Write the chunks with new marks (unless ``force`` is False and the last flush was
        under ``FLUSH_S`` ago). Checksums go first, so a mark always has its checksum."""
        if not self._dirty or (not force and time.monotonic() - self._last_flush < FLUSH_S):
            return
        for chunk_index in sorted(self._dirty):
            region = slice(chunk_index * self.chunk, (chunk_index + 1) * self.chunk)
            self._checksum_array[region] = self.checksums[region]
            self._completed_array[region] = self.completed[region].astype(np.uint8)
        self._dirty.clear()
        self._last_flush = time.monotonic()
