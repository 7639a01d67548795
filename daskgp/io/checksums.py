"""Checksums that name damaged or stale data: of written blocks (``daskgp verify``), and of the
files that define a job (its pipeline file, the local modules it imports and its model
checkpoints: part of the job's identity).
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import glob
import hashlib
import os
import site
import sys
import sysconfig
import zlib
from collections.abc import Iterable, Iterator, Sequence
from importlib.machinery import ModuleSpec, PathFinder

import numpy as np

from ..errors import PipelineSetupError

#: Checksums are summed modulo this (an unsigned 32-bit value per tile and output).
MODULUS = 2**32


def _crc32(data, start: int = 0) -> int:
    return zlib.crc32(data, start)


def _crc32c(data, start: int = 0) -> int:
    import google_crc32c

    if not isinstance(data, bytes):
        data = data.view()
        data.flags.writeable = False  # google_crc32c reads read-only buffers only
    return google_crc32c.extend(start, data)


#: The algorithms a block checksum may be made with, by the name a job's record stores:
#: ``"crc32"`` (zlib; what daskgp wrote before records named their algorithm) and
#: ``"crc32c"`` (Castagnoli, in hardware through google-crc32c, a dependency of zarr: about
#: 7x cheaper than zlib's on a 2 MiB block).
CHECKSUM_ALGORITHMS = {"crc32": _crc32, "crc32c": _crc32c}
#: What a record says when it does not name its algorithm (written by an older daskgp).
LEGACY_CHECKSUM = "crc32"

_algorithm: contextvars.ContextVar = contextvars.ContextVar("daskgp_block_checksum",
                                                            default=None)


def default_checksum() -> str:
    """The algorithm new jobs use: crc32c where google-crc32c has its compiled (hardware)
    implementation, else zlib's crc32 (the pure-Python crc32c would cost seconds a tile).

    Example:
        >>> default_checksum() in CHECKSUM_ALGORITHMS
        True
    """
    try:
        import google_crc32c
    except ImportError:
        return "crc32"
    return "crc32c" if google_crc32c.implementation == "c" else "crc32"


def checksum_algorithm(name: str | None, where: str) -> str:
    """``name`` (None: the legacy ``"crc32"``) if daskgp knows it; else a ``PipelineSetupError``
    naming ``where`` (the output whose record names it).

    Example:
        >>> checksum_algorithm(None, "out.zarr")
        'crc32'
    """
    name = LEGACY_CHECKSUM if name is None else str(name)
    if name not in CHECKSUM_ALGORITHMS:
        raise PipelineSetupError(
            f"{where}: its blocks' checksums were made with {name!r}, which this daskgp does "
            f"not know (it knows {sorted(CHECKSUM_ALGORITHMS)}); it was written by another "
            "daskgp version: use that one, or rerun with --overwrite"
        )
    return name


@contextlib.contextmanager
def checksums_with(name: str | None) -> Iterator[None]:
    """Make the block checksums of this thread (and its context) with algorithm ``name``
    (None: ``default_checksum()``): a tile's writes use the algorithm of their job's record.

    Example:
        >>> with checksums_with("crc32"):
        ...     block_checksum((0,), np.zeros(3, np.uint8)) == zlib.crc32(
        ...         np.zeros(3, np.uint8), zlib.crc32(np.zeros(1, "<i8")))
        True
    """
    token = _algorithm.set(name)
    try:
        yield
    finally:
        _algorithm.reset(token)


def block_checksum(start: Sequence[int], block: np.ndarray, algorithm: str | None = None
                   ) -> int:
    """Checksum of a block's voxel position ``start`` in its dataset and of its bytes (C order),
    with ``algorithm`` (``CHECKSUM_ALGORITHMS``; by default the one ``checksums_with`` set,
    else ``default_checksum()``).

    Checksums of the blocks of a region add up (modulo 2**32) to the region's, in any order:
    that is how a tile's checksum is made from its write tasks and checked by ``verify``.

    Example:
        >>> block = np.arange(4, dtype=np.uint8)
        >>> block_checksum((0,), block) == block_checksum((4,), block)
        False
        >>> block_checksum((0,), block, "crc32") == block_checksum((0,), block, "crc32c")
        False
    """
    name = algorithm or _algorithm.get() or default_checksum()
    checksum = CHECKSUM_ALGORITHMS[name]
    position = np.asarray(tuple(start), dtype="<i8").tobytes()
    # The array itself is the buffer (no copy of a contiguous block into bytes).
    return checksum(np.ascontiguousarray(block).reshape(-1).view(np.uint8), checksum(position))


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


#: Never part of a job's identity, wherever it is imported from (like installed libraries).
FRAMEWORK_PACKAGES = frozenset({"daskgp"})


def _library_folders() -> list[str]:
    """Folders of the standard library and of installed packages (site-packages)."""
    folders = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib",
                                                         "platlib")}
    folders.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    folders.add(site.getusersitepackages())
    return [os.path.realpath(folder) for folder in folders if folder]


def _within(path: str, folders: Iterable[str]) -> bool:
    return any(os.path.commonpath([path, folder]) == folder for folder in folders)


def _imported_names(tree: ast.AST, package: str | None) -> Iterator[str]:
    """The absolute names of the modules an ``import``/``from ... import`` may load (for
    ``from m import n``: ``m`` and the submodule ``m.n``, if there is one)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue  # a relative import outside a package fails anyway
                parts = package.split(".")
                if node.level > len(parts):
                    continue
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names if alias.name != "*")


def _resolve(name: str, roots: list[str]) -> list[tuple[str, ModuleSpec]]:
    """The specs of ``name`` and its parent packages, found in ``roots`` only (empty when
    ``name``'s top-level package is not there: installed, built in, or missing)."""
    found = []
    search = roots
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        spec = PathFinder.find_spec(".".join(parts[:depth]), search)
        if spec is None:
            break
        found.append((spec.name, spec))
        search = list(spec.submodule_search_locations or [])
        if not search:
            break
    return found


def local_modules(pipeline_file: str | os.PathLike,
                  roots: Sequence[str | os.PathLike] | None = None) -> dict[str, str]:
    """The user's modules a pipeline file imports: module name -> file, for the modules (and
    their packages) found in the pipeline file's folder or the current directory (``roots``),
    followed through their own imports. Installed packages and the standard library are not
    (their versions are the environment's), nor is daskgp.

    The imports are read from the source (``import m``, ``from m import n``, relative
    imports in local packages, also inside functions); modules loaded by name at run time
    (``importlib.import_module``) and data files are not seen.

    Example:
        >>> local_modules("pipeline.py")  # doctest: +SKIP
        {'my_net': '/home/me/job/my_net.py'}
    """
    pipeline_file = os.path.realpath(os.fspath(pipeline_file))
    if roots is None:
        roots = [os.path.dirname(pipeline_file), os.getcwd()]
    roots = list(dict.fromkeys(os.path.realpath(os.fspath(root)) for root in roots))
    libraries = [folder for folder in _library_folders()
                 if not any(_within(root, [folder]) for root in roots)]
    found: dict[str, str] = {}
    todo: list[tuple[str, str | None]] = [(pipeline_file, None)]
    while todo:
        file, package = todo.pop()
        try:
            with open(file, "rb") as source:
                tree = ast.parse(source.read(), filename=file)
        except (OSError, SyntaxError, ValueError):
            continue  # the import itself fails, with a clearer error than ours
        for name in _imported_names(tree, package):
            if name.split(".")[0] in FRAMEWORK_PACKAGES | set(sys.builtin_module_names):
                continue
            for module, spec in _resolve(name, roots):
                origin = spec.origin
                if module in found or not spec.has_location or origin is None:
                    continue
                origin = os.path.realpath(origin)
                if not origin.endswith(".py") or _within(origin, libraries):
                    continue
                found[module] = origin
                is_package = spec.submodule_search_locations is not None
                todo.append((origin, module if is_package else module.rpartition(".")[0]))
    return dict(sorted(found.items()))


def pipeline_fingerprint(pipeline_file: str | os.PathLike, pipeline=None,
                         checkpoints: Iterable | None = None) -> str:
    """What a job's identity says about its pipeline: the SHA-256 of the pipeline file, of
    the local modules it imports (``local_modules``: a ``my_net.py`` beside it) and of every
    model checkpoint it names (see ``checkpoint_files``), as one hex digest.

    A changed pipeline file, local module or checkpoint changes the fingerprint, so a rerun
    over an output written by the old one is refused instead of reporting stale tiles as
    done. (A pipeline file without local modules has the fingerprint it had before they were
    covered.)

    Example:
        >>> len(pipeline_fingerprint(__file__))
        64
    """
    digest = hashlib.sha256(b"pipeline:" + file_digest(pipeline_file).encode())
    for module, file in local_modules(pipeline_file).items():
        digest.update(f"\nmodule {module}:".encode())
        digest.update(file_digest(file).encode())
    for checkpoint in checkpoint_files(pipeline, checkpoints):
        if not os.path.isfile(checkpoint):
            raise PipelineSetupError(
                f"pipeline file {pipeline_file} names the checkpoint {checkpoint}, which does "
                "not exist"
            )
        digest.update(f"\ncheckpoint {os.path.basename(checkpoint)}:".encode())
        digest.update(file_digest(checkpoint).encode())
    return digest.hexdigest()
