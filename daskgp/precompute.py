"""Batch precomputation jobs: the first N batches of a pipeline written to a zarr group.

Deterministic (batch i is the pipeline's i-th batch for a seed) and resumable (a rerun skips the
batches already written). Scales to millions of batches: batch indices come from a lazy walk of
the completion record (``daskgp.io.batch_record``, chunks of 4,096 batches), batches run in a
sliding window (``daskgp.job_runner``), so startup and the driver's memory do not depend on the
number of batches. ``daskgp precompute`` parses its arguments in ``daskgp.cli``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import dask
import numpy as np
import zarr
from dask.base import tokenize
from dask.delayed import Delayed
from tqdm import tqdm

from .batch import Batch
from .errors import ArrayError, PipelineSetupError
from .geometry import Coordinate, Roi
from .io.batch_record import CHECKSUMS, COMPLETED, RECORD_CHUNK, BatchRecord, record_chunks
from .io.checksums import data_checksum
from .io.locks import LOCK_FILE, OutputLock
from .job_runner import Unit, run_units
from .keys import ArrayKey
from .names import NodeTask
from .numpy_nodes import without_learning
from .pipeline import Pipeline, build
from .request import BatchRequest
from .scheduling import is_client, local_get, resolve_scheduler
from .specs import ArraySpec

logger = logging.getLogger(__name__)

#: Group attribute that marks a precompute output and records its layout.
LAYOUT_ATTR = "daskgp_precompute"
#: Name prefix of the write tasks, one per batch.
WRITE_PREFIX = "precompute-write"
#: 2: the record (``_completed``, ``_checksums``) in chunks of ``RECORD_CHUNK`` batches, written
#: by the driver. 1 (before): one record chunk per batch, written by each batch's task; still
#: read (``PrecomputedSource``, ``daskgp verify``, ``daskgp show``), not resumed or grown.
LAYOUT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class LayoutError(ValueError):
    """A path that holds something other than a precompute output (callers name the job)."""


@dataclass(frozen=True)
class StoredArray:
    """How one requested array is stored: zarr array ``name`` of shape ``(N, *shape)``.

    Attributes:
        name (str): the array's name in the group, the key's identifier.
        shape (tuple of int): the shape of one batch's array (channels, then spatial axes).
        dtype (str): the numpy dtype, as ``np.dtype(...).str``.
        roi_offset, roi_shape, voxel_size (tuple of int or None): the spec's geometry in
            world units (None for nonspatial arrays).
        interpolatable (bool or None), nonspatial (bool): the spec's flags.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    roi_offset: tuple[int, ...] | None
    roi_shape: tuple[int, ...] | None
    voxel_size: tuple[int, ...] | None
    interpolatable: bool | None
    nonspatial: bool

    @classmethod
    def from_array(cls, key: ArrayKey, data, spec: ArraySpec) -> StoredArray:
        """The layout of ``key``'s array in a (lazy) batch."""
        if any(np.isnan(s) for s in data.shape):
            raise PipelineSetupError(
                f"precompute: {key} has an unknown shape {data.shape} in the batch; every "
                "requested array needs a known shape to be stored"
            )
        spatial = not spec.nonspatial and spec.roi is not None
        return cls(
            name=key.identifier,
            shape=tuple(int(s) for s in data.shape),
            dtype=np.dtype(data.dtype).str,
            roi_offset=_ints(spec.roi.begin) if spatial else None,
            roi_shape=_ints(spec.roi.shape) if spatial else None,
            voxel_size=_ints(spec.voxel_size) if spatial and spec.voxel_size else None,
            interpolatable=spec.interpolatable,
            nonspatial=bool(spec.nonspatial),
        )

    @classmethod
    def from_attrs(cls, name: str, attrs: dict) -> StoredArray:
        """Read back what ``to_attrs`` wrote."""
        def optional(field):
            value = attrs.get(field)
            return None if value is None else tuple(int(v) for v in value)

        return cls(name=name, shape=tuple(int(s) for s in attrs["shape"]), dtype=attrs["dtype"],
                   roi_offset=optional("roi_offset"), roi_shape=optional("roi_shape"),
                   voxel_size=optional("voxel_size"), interpolatable=attrs.get("interpolatable"),
                   nonspatial=bool(attrs.get("nonspatial", False)))

    def to_attrs(self) -> dict:
        """JSON-compatible attributes; ``resolution``/``offset`` in gunpowder's convention."""
        attrs = {
            "shape": list(self.shape), "dtype": self.dtype,
            "roi_offset": _list(self.roi_offset), "roi_shape": _list(self.roi_shape),
            "voxel_size": _list(self.voxel_size), "interpolatable": self.interpolatable,
            "nonspatial": self.nonspatial,
        }
        if self.voxel_size is not None:
            attrs["resolution"] = list(self.voxel_size)
            attrs["offset"] = list(self.roi_offset)
        return attrs

    @property
    def roi(self) -> Roi | None:
        """The ROI of every stored batch of this array (None for nonspatial arrays)."""
        return None if self.roi_offset is None else Roi(self.roi_offset, self.roi_shape)

    def spec(self) -> ArraySpec:
        """The ``ArraySpec`` a source of the stored batches provides."""
        return ArraySpec(
            roi=self.roi,
            voxel_size=None if self.voxel_size is None else Coordinate(self.voxel_size),
            interpolatable=self.interpolatable, nonspatial=self.nonspatial,
            dtype=np.dtype(self.dtype),
        )

    def describe(self) -> str:
        """One line for error messages."""
        return f"{self.name}: shape {self.shape}, dtype {np.dtype(self.dtype)}, ROI {self.roi}"


@dataclass(frozen=True)
class PrecomputeLayout:
    """What a precompute output holds: ``num_batches`` batches of ``arrays`` for ``seed``."""

    num_batches: int
    seed: int
    arrays: tuple[StoredArray, ...]
    #: The pipeline's fingerprint (``pipeline_fingerprint``), None when not known.
    pipeline: str | None = None
    #: The layout version the output was written with (``LAYOUT_VERSION`` for new ones).
    version: int = LAYOUT_VERSION

    def to_attrs(self) -> dict:
        """The group attribute ``daskgp_precompute``."""
        return {"version": self.version, "num_batches": self.num_batches, "seed": self.seed,
                "arrays": {stored.name: stored.to_attrs() for stored in self.arrays},
                "pipeline": self.pipeline}

    @classmethod
    def from_attrs(cls, attrs: dict) -> PrecomputeLayout:
        """Read back what ``to_attrs`` wrote."""
        if attrs.get("version") not in READABLE_VERSIONS:
            raise LayoutError(
                f"unsupported precompute layout version {attrs.get('version')!r} (this daskgp "
                f"reads versions {', '.join(map(str, READABLE_VERSIONS))}): written by another "
                "daskgp version"
            )
        return cls(num_batches=int(attrs["num_batches"]), seed=int(attrs["seed"]),
                   arrays=tuple(StoredArray.from_attrs(name, a)
                                for name, a in attrs["arrays"].items()),
                   pipeline=attrs.get("pipeline"), version=int(attrs["version"]))

    def differences(self, other: PrecomputeLayout) -> list[str]:
        """What differs between this (stored) layout and ``other`` (requested), in words.

        More batches than stored is no difference: the output grows. The pipelines are
        compared when both fingerprints are known.
        """
        found = []
        if other.num_batches < self.num_batches:
            found.append(f"num_batches: stored {self.num_batches}, now {other.num_batches} "
                         "(an output grows, it does not shrink)")
        if None not in (self.pipeline, other.pipeline) and self.pipeline != other.pipeline:
            found.append("pipeline: the pipeline file (or a checkpoint it names, or a local "
                         "module it imports) changed since the stored batches were written")
        if self.seed != other.seed:
            found.append(f"seed: stored {self.seed}, now {other.seed}")
        stored = {a.name: a for a in self.arrays}
        wanted = {a.name: a for a in other.arrays}
        if stored.keys() != wanted.keys():
            found.append(f"keys: stored {sorted(stored)}, now {sorted(wanted)}")
        for name in sorted(stored.keys() & wanted.keys()):
            if stored[name] != wanted[name]:
                found.append(f"stored {stored[name].describe()}; now {wanted[name].describe()}")
        return found


@dataclass(frozen=True)
class PrecomputeSummary:
    """What a ``precompute`` run did."""

    path: str
    num_batches: int
    seed: int
    written: int
    skipped: int
    #: Seconds from the start of the job to its first batch written (None: none written).
    first_batch_s: float | None = None
    #: Seconds the job took, lock and setup included.
    elapsed_s: float = 0.0


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _list(values) -> list | None:
    return None if values is None else list(values)


# --- the zarr group ---------------------------------------------------------------------------


def _is_local(path: str) -> bool:
    return "://" not in path


def read_layout(path: str) -> PrecomputeLayout | None:
    """The layout stored at ``path``; None when nothing is there (or an empty folder).

    Raises ``LayoutError`` when ``path`` holds something that is not a precompute output.
    """
    if _is_local(path):
        if not os.path.exists(path) or (os.path.isdir(path) and not [
                name for name in os.listdir(path) if not name.startswith(LOCK_FILE)]):
            return None
    try:
        root = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError) as error:
        if not _is_local(path) and isinstance(error, FileNotFoundError):
            return None
        raise LayoutError(f"{path} exists and is not a zarr group") from error
    if LAYOUT_ATTR not in root.attrs:
        raise LayoutError(
            f"{path} is a zarr group but not a precompute output (no {LAYOUT_ATTR!r} attribute)"
        )
    try:
        return PrecomputeLayout.from_attrs(dict(root.attrs[LAYOUT_ATTR]))
    except (KeyError, TypeError, ValueError) as error:
        raise LayoutError(f"{path} has a damaged {LAYOUT_ATTR!r} attribute: {error}") from error


def read_completed(path: str, num_batches: int) -> np.ndarray:
    """One bool per batch of the output at ``path``: True once the batch is fully written.

    All False when the output has no ``_completed`` array yet (its creation was cut short).
    The whole record in memory (a byte per batch): jobs walk it with ``record_chunks``.
    """
    return np.concatenate([marks for _, marks, _ in record_chunks(path, num_batches)]
                          or [np.zeros(0, bool)])


def count_unwritten(path: str, num_batches: int) -> tuple[int, int | None]:
    """How many batches the output at ``path`` has not written, and the first of them (None
    when all are written); reads the record a chunk at a time."""
    count, first_missing = 0, None
    for first, marks, _ in record_chunks(path, num_batches):
        missing = np.flatnonzero(~marks)
        if first_missing is None and len(missing):
            first_missing = first + int(missing[0])
        count += len(missing)
    return count, first_missing


def first_unwritten(path: str, num_batches: int, start: int = 0) -> int | None:
    """The first batch from ``start`` on that the output at ``path`` has not written, or None
    when all are; reads the record a chunk at a time up to it."""
    for first, marks, _ in record_chunks(path, num_batches, start):
        offset = max(0, start - first)
        missing = np.flatnonzero(~marks[offset:])
        if len(missing):
            return first + offset + int(missing[0])
    return None


def _grow(path: str, stored: PrecomputeLayout, layout: PrecomputeLayout) -> None:
    """Resize the arrays of an output from ``stored.num_batches`` to ``layout.num_batches``
    batches; the stored ones are untouched (batch i is the same for any N)."""
    root = zarr.open_group(path, mode="r+")
    for name in [s.name for s in stored.arrays] + [COMPLETED, CHECKSUMS]:
        if name not in root:
            continue
        array = root[name]
        array.resize((layout.num_batches, *array.shape[1:]))
        if "num_batches" in array.attrs:
            array.attrs["num_batches"] = layout.num_batches
    root.attrs[LAYOUT_ATTR] = layout.to_attrs()
    logger.info("precompute: %s grows from %d to %d batches", path, stored.num_batches,
                layout.num_batches)


def _discard(path: str) -> None:
    """``overwrite``: remove everything a precompute output holds (not other folders)."""
    root = zarr.open_group(path, mode="r+")
    with warnings.catch_warnings():  # zarr notes the lock record, which is none of its own
        warnings.filterwarnings("ignore", message=f".*{LOCK_FILE}")
        names = list(root.array_keys())
    for name in names:
        del root[name]
    root.attrs.clear()


def _require_arrays(path: str, layout: PrecomputeLayout, new: bool) -> None:
    """Create the arrays of ``layout`` that are missing; check the ones that exist.

    A ``new`` output gets its layout attribute first, so that a creation cut short resumes.
    """
    root = zarr.open_group(path, mode="a")
    if new:
        root.attrs[LAYOUT_ATTR] = layout.to_attrs()
    wanted = [(s.name, (layout.num_batches, *s.shape), (1, *s.shape), np.dtype(s.dtype),
               {**s.to_attrs(), "seed": layout.seed, "num_batches": layout.num_batches})
              for s in layout.arrays]
    wanted.append((COMPLETED, (layout.num_batches,), (RECORD_CHUNK,), np.dtype(np.uint8), {}))
    wanted.append((CHECKSUMS, (layout.num_batches, len(layout.arrays)),
                   (RECORD_CHUNK, len(layout.arrays)), np.dtype(np.uint32),
                   {"columns": [s.name for s in layout.arrays]}))
    with warnings.catch_warnings():  # zarr notes the lock record, which is none of its own
        warnings.filterwarnings("ignore", message=f".*{LOCK_FILE}")
        existing = set(root.array_keys())
    for name, shape, chunks, dtype, attrs in wanted:
        if name in existing:
            array = root[name]
            found = (tuple(array.shape), tuple(array.chunks), np.dtype(array.dtype))
            if found != (shape, chunks, dtype):
                raise PipelineSetupError(
                    f"precompute: array {name!r} in {path} has shape {found[0]}, chunks "
                    f"{found[1]} and dtype {found[2]}, but its layout says {shape}, {chunks}, "
                    f"{dtype}; nothing was written"
                )
            continue
        root.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                          attributes=attrs, config={"write_empty_chunks": True})


def _write_batch(path: str, index: int, arrays: dict[str, np.ndarray],
                 expected: dict[str, tuple], *side_effects) -> list[int]:
    """Write batch ``index`` (one chunk per array) and return its checksums (one per array,
    which the driver records with the batch's mark). Runs in a task."""
    root = zarr.open_group(path, mode="r+")
    for name, data in arrays.items():
        data = np.asarray(data)
        shape, dtype = expected[name]
        if data.shape != shape or data.dtype != dtype:
            raise ArrayError(
                f"precompute: batch {index} has {name} with shape {data.shape} and dtype "
                f"{data.dtype}, but {path} stores {shape} and {dtype} (from the first batch): "
                "every batch must have the same shapes"
            )
        root[name][index] = data
    return [data_checksum(np.asarray(arrays[name])) for name in expected]


# --- the job ----------------------------------------------------------------------------------


def _plan_write(pipeline: Pipeline, request: BatchRequest, path: str, layout: PrecomputeLayout,
                index: int, batch: Batch | None = None) -> Delayed:
    """The write task of batch ``index``: one task that depends on the batch's arrays."""
    if batch is None:
        batch = pipeline.request_lazy_batch(request.in_sequence(layout.seed, index))
    keys = [ArrayKey(stored.name) for stored in layout.arrays]
    arrays = {key.identifier: batch[key].data for key in keys}
    expected = {s.name: (s.shape, np.dtype(s.dtype)) for s in layout.arrays}
    name = f"{WRITE_PREFIX}-{index}-{tokenize(path, index, arrays, batch.side_effects)}"
    return dask.delayed(NodeTask(_write_batch, "precompute"), pure=True)(
        path, index, arrays, expected, *batch.side_effects, dask_key_name=name
    )


class _PlannedBatch:
    """A batch's write task as one job unit (not a dask collection, so that a cluster's
    ``submit`` ships the graph instead of computing it first)."""

    def __init__(self, task: Delayed) -> None:
        self.task = task


class _ComputeBatch:
    """Run in a worker: compute one batch's graph in place (the window of batches in flight
    is the parallelism) and return its checksums. On a cluster's dashboard each batch is one
    task, named ``precompute-batch-...``."""

    __name__ = "precompute-batch"

    def __call__(self, planned: _PlannedBatch) -> list[int]:
        (checksums,) = dask.compute(planned.task, scheduler=local_get("sync"))
        return checksums


_compute_batch = _ComputeBatch()


def default_in_flight(scheduler) -> int:
    """Twice the cores (local) or the cluster's worker threads."""
    if is_client(scheduler):
        return max(2, 2 * sum(scheduler.nthreads().values()))
    return max(2, 2 * (os.cpu_count() or 1))


def precompute(
    pipeline,
    request: BatchRequest,
    path: str | os.PathLike,
    num_batches: int,
    seed: int | None = None,
    scheduler=None,
    client=None,
    batches_in_flight: int | None = None,
    progress: bool = True,
    pipeline_hash: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    max_batches: int | None = None,
) -> PrecomputeSummary:
    """Write batches ``0 .. num_batches - 1`` of ``pipeline`` for ``request`` to a zarr group.

    Batch i is ``request.in_sequence(seed, i)`` planned and built through the pipeline: the
    batch that ``gp.build(pipeline, seed=seed)`` returns as its i-th ``request_batch``, so a
    rerun gives the same bits. The group at ``path`` gets one array per requested key (named
    after the key, shape ``(num_batches, *batch_shape)``, one chunk per batch, attributes
    giving the ROI, ``resolution``/``offset``, dtype, seed and N) and the job's record:
    ``_completed`` (a mark per batch) and ``_checksums`` (each batch's checksum per array,
    which ``PrecomputedSource`` and ``daskgp verify`` check), in chunks of ``RECORD_CHUNK``
    batches (``daskgp.io.batch_record``). Each batch's arrays are written by one task; the
    driver marks the batch, with its checksums, as it finishes (a few record writes a second,
    not one per batch). A rerun skips marked batches and rewrites none of them (a batch
    written but not yet marked when a job was killed is computed again, to the same bits); a
    rerun with a larger ``num_batches`` (same pipeline, request and seed) grows the output and
    writes only the new batches. The output is locked for the job (``daskgp.io.locks``): a
    second job on it fails at once naming the holder; ``pipeline_hash`` (the CLI's pipeline
    fingerprint) is stored, and an output of another pipeline refused unless ``overwrite``.

    Scale: the pending batch indices come from a lazy walk of the record, a chunk at a time,
    and batches are planned as the window needs them and run ``batches_in_flight`` at a time
    in a sliding window (``daskgp.job_runner``: threads or spawned processes locally, futures
    on a ``distributed.Client``; each batch's graph runs in one worker). Startup and the
    driver's memory do not depend on ``num_batches``: a job of a million batches writes its
    first batch as soon as one of ten does. Memory: about ``batches_in_flight x batch_bytes``.

    Args:
        pipeline (Pipeline or BatchProvider): what makes the batches.
        request (BatchRequest): the request of every batch (its own seed is replaced).
        path (str or os.PathLike): the zarr group to write (created, or resumed).
        num_batches (int): how many batches.
        seed (int, optional): base seed; by default the stored one when resuming, else 0.
        scheduler (str, optional): ``"sync"``, ``"threads"`` or ``"processes"`` (dask's
            rules when None: an active client, ``dask.config``, else threads).
        client (distributed.Client, optional): compute on this cluster instead.
        batches_in_flight (int, optional): batches computed at once (default: twice the
            cores or the cluster's threads).
        progress (bool): show a tqdm progress bar of completed batches.
        pipeline_hash (str, optional): the pipeline's fingerprint, part of the identity.
        overwrite (bool): discard what a precompute output at ``path`` holds, and start anew.
        force (bool): take the output's lock even if it is held (its holder is known dead).
        max_batches (int, optional): stop after writing this many batches (trial runs,
            benchmarks); a rerun continues. ``skipped`` then counts the marked batches seen
            before the job stopped.

    Example:
        >>> precompute(pipeline, request, "batches.zarr", num_batches=1000)  # doctest: +SKIP
    """
    started = time.perf_counter()
    path = os.fspath(path)
    if int(num_batches) < 1:
        raise PipelineSetupError(f"precompute: num_batches must be >= 1, got {num_batches}")
    if max_batches is not None and int(max_batches) < 0:
        raise PipelineSetupError(f"precompute: max_batches must be >= 0, got {max_batches}")
    if not isinstance(request, BatchRequest) or request.graph_specs:
        raise PipelineSetupError(
            f"precompute: request must be a BatchRequest of arrays only, got {request!r}"
        )
    for reserved in (COMPLETED, CHECKSUMS):
        if reserved in {key.identifier for key in request.array_specs}:
            raise PipelineSetupError(f"precompute: the key name {reserved!r} is reserved")
    scheduler = resolve_scheduler(scheduler, client)
    in_flight = int(batches_in_flight if batches_in_flight is not None
                    else default_in_flight(scheduler))
    if in_flight < 1:
        raise PipelineSetupError(f"precompute: batches_in_flight must be >= 1, got {in_flight}")
    try:
        read_layout(path)
    except LayoutError as error:
        raise PipelineSetupError(f"precompute: {error}; nothing was written") from error
    pipeline = Pipeline.to_pipeline(pipeline)
    _warn_about_pre_cache(pipeline)
    with OutputLock(path, str(pipeline_hash), " ".join(sys.argv) or "precompute").acquire(force):
        stored = read_layout(path)
        if overwrite and stored is not None:
            _discard(path)
            stored = None
        if stored is not None and stored.version != LAYOUT_VERSION:
            raise PipelineSetupError(
                f"precompute: {path} was written by an older daskgp (precompute layout "
                f"{stored.version}, a record file per batch); PrecomputedSource and `daskgp "
                "verify` still read it, but precompute does not resume or grow it: nothing was "
                "written (rerun with --overwrite to recompute it, or write elsewhere)"
            )
        seed = int(seed) if seed is not None else (stored.seed if stored is not None else 0)
        job = _Job(path, int(num_batches), seed, stored, pipeline_hash, started)
        return job.run(pipeline, request, scheduler, in_flight, progress, max_batches)


@dataclass
class _Job:
    """One precompute job, once its output is locked and ``stored`` (its layout, or None)
    read."""

    path: str
    num_batches: int
    seed: int
    stored: PrecomputeLayout | None
    pipeline_hash: str | None
    started: float
    written: int = 0
    skipped: int = 0
    first_batch_s: float | None = None

    def run(self, pipeline: Pipeline, request: BatchRequest, scheduler, in_flight: int,
            progress: bool, max_batches: int | None) -> PrecomputeSummary:
        path, num_batches, seed, stored = self.path, self.num_batches, self.seed, self.stored
        with build(pipeline, scheduler=scheduler, seed=seed) as p:
            # Batches before the first unwritten one are all written: nothing else is read.
            first = 0 if stored is None else first_unwritten(path, num_batches)
            # The probe is planned, never computed; it is the first pending batch, reused.
            # A finished output's probe only describes the layout: numpy nodes are not run.
            with contextlib.nullcontext() if first is not None else without_learning():
                probe = p.request_lazy_batch(request.in_sequence(seed, first or 0))
            layout = PrecomputeLayout(num_batches, seed, tuple(
                StoredArray.from_array(key, probe[key].data, probe[key].spec)
                for key, spec in request.array_specs.items() if not spec.placeholder
            ), self.pipeline_hash)
            if stored is not None and (differences := stored.differences(layout)):
                raise PipelineSetupError(
                    f"precompute: {path} holds a different output; nothing was written (rerun "
                    "with --overwrite to replace it, or write elsewhere). Differences: "
                    + "; ".join(differences)
                )
            if first is None:
                self.skipped = num_batches
                return self.summary()
            if stored is not None and num_batches > stored.num_batches:
                _grow(path, stored, layout)
            _require_arrays(path, layout, new=stored is None)

            record = BatchRecord(path, num_batches)
            self.skipped = first
            with tqdm(total=num_batches, initial=first, unit="batch", desc="precompute",
                      disable=not progress) as bar:
                def complete(count: int) -> None:
                    self.skipped += count
                    bar.update(count)

                def finished(index: int, checksums: list[int]) -> None:
                    record.mark(index, checksums)
                    record.flush(force=False)
                    if self.first_batch_s is None:
                        self.first_batch_s = time.perf_counter() - self.started
                    self.written += 1
                    bar.update(1)

                pending = record.pending(first, complete)
                if max_batches is not None:
                    pending = itertools.islice(pending, int(max_batches))
                try:
                    run_units(self._units(p, request, layout, pending, probe, first),
                              scheduler, in_flight, finished)
                finally:
                    record.flush()
        return self.summary()

    def _units(self, pipeline: Pipeline, request: BatchRequest, layout: PrecomputeLayout,
               pending: Iterator[int], probe: Batch, first: int) -> Iterator[Unit]:
        """The pending batches as job units, planned as the window takes them."""
        for index in pending:
            task = _plan_write(pipeline, request, self.path, layout, index,
                               probe if index == first else None)
            yield index, _compute_batch, (_PlannedBatch(task),)

    def summary(self) -> PrecomputeSummary:
        return PrecomputeSummary(self.path, self.num_batches, self.seed, written=self.written,
                                 skipped=self.skipped, first_batch_s=self.first_batch_s,
                                 elapsed_s=time.perf_counter() - self.started)


def _warn_about_pre_cache(pipeline: Pipeline) -> None:
    from .nodes.pre_cache import PreCache

    if any(isinstance(node, PreCache) for node in pipeline.nodes()):
        logger.warning(
            "precompute: the pipeline contains a PreCache, which computes every batch in the "
            "driver while it is planned; remove it: precompute computes batches in parallel"
        )
