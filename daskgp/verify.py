"""``daskgp verify``: read back the outputs of ``predict`` and ``precompute`` and name every
damaged block (unreadable or missing chunk, data that differs from its stored checksum).

Catches what zarr itself cannot: a truncated blosc chunk in zarr format 2 decodes without error
into partly zeroed data (zarr's behaviour), which only a checksum of the written data reveals.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

import numpy as np
import zarr
from tqdm import tqdm

from .errors import PipelineSetupError
from .geometry import Coordinate, Roi
from .io.batch_record import record_chunks
from .io.blocks import ScanTiling
from .io.checksums import block_checksum, checksum_algorithm, combine, data_checksum
from .io.tile_record import TILE_CHECKSUMS, open_record
from .io.zarr_reader import ZarrReader
from .precompute import LayoutError, read_layout


@dataclass
class VerifyReport:
    """What ``verify`` found: ``checked`` tiles or batches (``unit``), the ``damaged`` ones
    (one line each, naming dataset, chunk and region) and those without a stored checksum."""

    unit: str
    checked: int = 0
    unchecked: int = 0
    damaged: list[str] = field(default_factory=list)


def _read(reader: ZarrReader, selection: tuple[slice, ...],
          missing_is_damage: bool) -> tuple[np.ndarray | None, str]:
    """The data of ``selection``, or None and why it cannot be read (naming the chunks).

    ``missing_is_damage``: for arrays written with every chunk stored (precompute); zarr
    does not store a chunk of fill values (a prediction of zeros), whose checksum tells.
    """
    try:
        keys = reader.chunk_keys(selection)
        missing = [k for k, index in zip(keys, _chunk_indices(reader, selection), strict=True)
                   if missing_is_damage and not reader.chunk_exists(index)]
        if missing:
            return None, f"chunk(s) {', '.join(missing)} missing"
        return reader.read(selection), ""
    except Exception as error:  # a decode error: name what could not be read
        return None, (f"chunk(s) {', '.join(reader.chunk_keys(selection))} unreadable: "
                      f"{type(error).__name__}: {error}")


def _chunk_indices(reader: ZarrReader, selection: tuple[slice, ...]) -> list[tuple[int, ...]]:
    ranges = [range(s.start // c, max(s.start // c + 1, -(-s.stop // c)))
              for s, c in zip(selection, reader.chunks, strict=True)]
    return list(itertools.product(*ranges))


def _verify_predict(path: str, record, progress: bool) -> VerifyReport:
    attrs = dict(record.attrs)
    report = VerifyReport("tile")
    if "positions" not in attrs:
        raise PipelineSetupError(f"verify: {path} was written by a daskgp predict without "
                                 "checksums; nothing to verify")
    # The algorithm the record names (an older daskgp's records name none: crc32); one this
    # daskgp does not know is refused, never reported as damage.
    algorithm = checksum_algorithm(attrs.get("checksum"), f"verify: {path}")
    tiling = ScanTiling(tuple(tuple(p) for p in attrs["positions"]), Coordinate(attrs["stride"]))
    completed = np.asarray(record[:]).astype(bool)
    checksums = np.asarray(zarr.open_array(path, path=TILE_CHECKSUMS, mode="r")[:])
    outputs = []
    for column, output in enumerate(attrs["outputs"]):
        reader = ZarrReader(path, output["dataset"])
        reference = Roi(output["reference_offset"], output["reference_shape"])
        outputs.append((column, output["dataset"], reader, reference,
                        Coordinate(reader.attrs["resolution"]), Coordinate(reader.attrs["offset"])))
    grid = tuple(attrs["grid_shape"])
    for flat in tqdm(np.flatnonzero(completed), unit="tile", desc="verify", disable=not progress):
        index = tuple(int(i) for i in np.unravel_index(flat, grid))
        report.checked += 1
        for column, dataset, reader, reference, voxel_size, offset in outputs:
            owned = tiling.owned_roi(reference, index)
            begin = (owned.begin - offset) / voxel_size
            end = (owned.end - offset) / voxel_size
            channels = len(reader.shape) - len(begin)
            start = (0,) * channels + tuple(begin)
            stop = tuple(reader.shape[:channels]) + tuple(end)
            found, problem = [], ""
            for block in _blocks(start, stop, reader.chunks):
                data, problem = _read(reader, block, missing_is_damage=False)
                if data is None:
                    break
                found.append(block_checksum([s.start for s in block], data, algorithm))
            where = f"tile {index} (#{flat}): dataset {dataset!r}, ROI {owned}"
            if problem:
                report.damaged.append(f"{where}: {problem}")
            elif combine(found) != int(checksums[flat, column]):
                report.damaged.append(f"{where}: data differs from its checksum (stored "
                                      f"{int(checksums[flat, column])}, read {combine(found)})")
    return report


def _blocks(start, stop, chunks) -> list[tuple[slice, ...]]:
    """The pieces of ``[start, stop)`` on the chunk grid, as ``write_blocks`` writes them."""
    axes = []
    for a, b, c in zip(start, stop, chunks, strict=True):
        bounds = [a, *range((a // c + 1) * c, b, c), b]
        axes.append([slice(x, y) for x, y in itertools.pairwise(bounds)])
    return list(itertools.product(*axes))


def _verify_precompute(path: str, progress: bool) -> VerifyReport:
    layout = read_layout(path)
    report = VerifyReport("batch")
    readers = [(column, s, ZarrReader(path, s.name)) for column, s in enumerate(layout.arrays)]
    with tqdm(total=layout.num_batches, unit="batch", desc="verify",
              disable=not progress) as bar:
        # The record a chunk at a time: memory does not grow with the number of batches.
        for first, marks, stored in record_chunks(path, layout.num_batches):
            for index in first + np.flatnonzero(marks):
                report.checked += 1
                for column, array, reader in readers:
                    _verify_batch(report, int(index), column, array, reader,
                                  None if stored is None else int(stored[index - first, column]))
            bar.update(len(marks))
    return report


def _verify_batch(report: VerifyReport, index: int, column: int, array, reader: ZarrReader,
                  expected: int | None) -> None:
    selection = (slice(index, index + 1), *(slice(0, n) for n in array.shape))
    data, problem = _read(reader, selection, missing_is_damage=True)
    where = f"batch {index}: array {array.name!r}"
    if data is None:
        report.damaged.append(f"{where}: {problem}")
    elif expected is None:
        report.unchecked += 1
    elif data_checksum(data[0]) != expected:
        report.damaged.append(f"{where}: data differs from its checksum (stored {expected}, "
                              f"read {data_checksum(data[0])})")


def verify(path: str | os.PathLike, progress: bool = False) -> VerifyReport:
    """Check every completed tile or batch of the ``predict``/``precompute`` output at
    ``path`` against the checksums stored when it was written.

    Example:
        >>> report = verify("prediction.zarr")  # doctest: +SKIP
        >>> report.damaged  # doctest: +SKIP
        ["tile (0, 1, 0) (#3): dataset 'PRED', ROI [12:28, ...]: chunk(s) PRED/0.1.0 ..."]
    """
    path = os.fspath(path)
    record = open_record(path)
    if record is not None:
        return _verify_predict(path, record, progress)
    try:
        layout = read_layout(path)
    except LayoutError as error:
        raise PipelineSetupError(f"verify: {error}") from error
    if layout is None:
        raise PipelineSetupError(f"verify: {path} does not exist")
    return _verify_precompute(path, progress)
