"""Checksums that name damaged or stale data: of written blocks (``daskgp verify``), and of the
files that define a job (its pipeline file and model checkpoints, part of the job's identity).
"""

from __future__ import annotations

import glob
import hashlib
import os
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import PipelineSetupError

#: Checksums are summed modulo this (an unsigned 32-bit value per tile and output).
MODULUS = 2**32


def block_checksum(start: Sequence[int], block: np.ndarray) -> int:
    """CRC32 of a block's voxel position ``start`` in its dataset and of its bytes (C order).

    Checksums of the blocks of a region add up (modulo 2**32) to the region's, in any order:
    that is how a tile's checksum is made from its write tasks and checked by ``verify``.

    Example:
        >>> block = np.arange(4, dtype=np.uint8)
        >>> block_checksum((0,), block) == block_checksum((4,), block)
        False
    """
    position = np.asarray(tuple(start), dtype="<i8").tobytes()
    return zlib.crc32(np.ascontiguousarray(block).tobytes(), zlib.crc32(position))


def combine(checksums: Iterable[int]) -> int:
    """The checksum of a region from those of its blocks."""
    return int(sum(int(c) for c in checksums) % MODULUS)


def data_checksum(data: np.ndarray) -> int:
    """CRC32 of an array's bytes in C order (a precomputed batch's checksum).

    Example:
        >>> data_checksum(np.zeros(3, np.uint8))
        4282505490
    """
    return zlib.crc32(np.ascontiguousarray(data).tobytes())


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's contents, hex.

    Example:
        >>> len(file_digest(__file__))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as content:
        for piece in iter(lambda: content.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _checkpoint_parts(value) -> list[str]:
    """The files of a checkpoint: the file itself, or the files of a TensorFlow checkpoint
    prefix (``prefix.index``, ``prefix.data-*``)."""
    path = os.path.abspath(os.fspath(value))
    if os.path.isfile(path):
        return [path]
    return [part for part in sorted(glob.glob(glob.escape(path) + ".*"))
            if os.path.isfile(part)]


def checkpoint_files(pipeline, named: Iterable | None = None) -> list[str]:
    """Model checkpoints a job depends on: the ``checkpoint`` attribute of any node in
    ``pipeline`` that names an existing file or TensorFlow checkpoint prefix (gunpowder's
    ``Predict(checkpoint=...)``), and those in ``named`` (a pipeline file's
    ``checkpoint``/``checkpoints``; None entries, "no checkpoint", are left out)."""
    found = []
    if pipeline is not None:
        for node in pipeline.nodes():
            value = getattr(node, "checkpoint", None)
            if isinstance(value, (str, os.PathLike)):
                found += _checkpoint_parts(value)
    if named is not None:
        named = [named] if isinstance(named, (str, os.PathLike)) else list(named)
        for value in named:
            if value is not None:
                # A name that matches nothing stays, so that the fingerprint names it.
                found += _checkpoint_parts(value) or [os.path.abspath(os.fspath(value))]
    return sorted(set(found))


def pipeline_fingerprint(pipeline_file: str | os.PathLike, pipeline=None,
                         checkpoints: Iterable | None = None) -> str:
    """What a job's identity says about its pipeline: the SHA-256 of the pipeline file and of
    every model checkpoint it names (see ``checkpoint_files``), as one hex digest.

    A changed pipeline file or checkpoint changes the fingerprint, so a rerun over an output
    written by the old one is refused instead of reporting stale tiles as done. Modules the
    pipeline file imports are not covered.
    """
    digest = hashlib.sha256(b"pipeline:" + file_digest(pipeline_file).encode())
    for checkpoint in checkpoint_files(pipeline, checkpoints):
        if not os.path.isfile(checkpoint):
            raise PipelineSetupError(
                f"pipeline file {pipeline_file} names the checkpoint {checkpoint}, which does "
                "not exist"
            )
        digest.update(f"\ncheckpoint {os.path.basename(checkpoint)}:".encode())
        digest.update(file_digest(checkpoint).encode())
    return digest.hexdigest()
