"""Batch precomputation jobs: the first N batches of a pipeline written to a zarr group.

Deterministic (batch i is the pipeline's i-th batch for a seed) and resumable (a rerun skips the
batches already written). ``daskgp precompute`` parses its arguments in ``daskgp.cli``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import dask
import numpy as np
import zarr
from dask.base import tokenize
from dask.callbacks import Callback
from dask.delayed import Delayed
from tqdm import tqdm

from . import _pdeathsig
from .batch import Batch
from .errors import ArrayError, PipelineSetupError
from .geometry import Coordinate, Roi
from .io.checksums import data_checksum
from .io.locks import LOCK_FILE, OutputLock
from .keys import ArrayKey
from .names import NodeTask
from .numpy_nodes import without_learning
from .pipeline import Pipeline, build
from .request import BatchRequest
from .scheduling import is_client, resolve_scheduler
from .specs import ArraySpec

logger = logging.getLogger(__name__)

#: Group attribute that marks a precompute output and records its layout.
LAYOUT_ATTR = "daskgp_precompute"
#: uint8 array with one chunk per batch, set to 1 by a batch's write task after its data.
COMPLETED = "_completed"
#: uint32 array (batches x arrays): each stored batch's checksum (``data_checksum``) per array.
CHECKSUMS = "_checksums"
#: Name prefix of the write tasks, one per batch.
WRITE_PREFIX = "precompute-write"
LAYOUT_VERSION = 1


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

    def to_attrs(self) -> dict:
        """The group attribute ``daskgp_precompute``."""
        return {"version": LAYOUT_VERSION, "num_batches": self.num_batches, "seed": self.seed,
                "arrays": {stored.name: stored.to_attrs() for stored in self.arrays},
                "pipeline": self.pipeline}

    @classmethod
    def from_attrs(cls, attrs: dict) -> PrecomputeLayout:
        """Read back what ``to_attrs`` wrote."""
        if attrs.get("version") != LAYOUT_VERSION:
            raise LayoutError(f"unsupported precompute layout version {attrs.get('version')!r}")
        return cls(num_batches=int(attrs["num_batches"]), seed=int(attrs["seed"]),
                   arrays=tuple(StoredArray.from_attrs(name, a)
                                for name, a in attrs["arrays"].items()),
                   pipeline=attrs.get("pipeline"))

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
            found.append("pipeline: the pipeline file (or a checkpoint it names) changed since "
                         "the stored batches were written")
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
    """
    try:
        completed = zarr.open_array(path, path=COMPLETED, mode="r")[:]
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        return np.zeros(num_batches, bool)
    return np.asarray(completed).astype(bool)


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
    wanted.append((COMPLETED, (layout.num_batches,), (1,), np.dtype(np.uint8), {}))
    wanted.append((CHECKSUMS, (layout.num_batches, len(layout.arrays)), (1, len(layout.arrays)),
                   np.dtype(np.uint32), {"columns": [s.name for s in layout.arrays]}))
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
                 expected: dict[str, tuple], *side_effects) -> int:
    """Write batch ``index`` (one chunk per array), then mark it complete. Runs in a task."""
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
    root[CHECKSUMS][index] = [data_checksum(np.asarray(arrays[name])) for name in expected]
    root[COMPLETED][index] = 1
    return index


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


class _TaskProgress(Callback):
    """Counts finished tasks named ``f"{prefix}-..."`` of local schedulers on a progress bar."""

    def __init__(self, bar: tqdm, prefix: str) -> None:
        super().__init__()
        self.bar = bar
        self.prefix = prefix + "-"

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if isinstance(key, str) and key.startswith(self.prefix):
            self.bar.update(1)


def _groups(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _run_local(tasks: Iterator[Delayed], scheduler: str, in_flight: int, bar: tqdm,
               prefix: str) -> None:
    # Groups of batches go to the scheduler together; a process pool lives for the whole job
    # (dask would otherwise spawn a new one for every compute).
    kwargs = {}
    pool = None
    if scheduler == "processes":
        pool = ProcessPoolExecutor(os.cpu_count() or 1,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   **_pdeathsig.pool_options())
        kwargs["pool"] = pool
    try:
        with _TaskProgress(bar, prefix):
            for group in _groups(tasks, in_flight):
                dask.compute(*group, scheduler=scheduler, **kwargs)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_distributed(tasks: Iterator[Delayed], client, in_flight: int, bar: tqdm) -> None:
    from distributed import as_completed

    running = set()
    finished = as_completed(loop=client.loop)

    def submit() -> None:
        task = next(tasks, None)
        if task is not None:
            future = client.compute(task)
            running.add(future)
            finished.add(future)

    try:
        for _ in range(in_flight):
            submit()
        for future in finished:
            future.result()  # raises the task's error
            running.discard(future)
            bar.update(1)
            submit()
    except BaseException:
        client.cancel(list(running))
        raise


def compute_tasks(tasks: Iterator[Delayed], scheduler, in_flight: int, bar: tqdm,
                  prefix: str) -> None:
    """Compute ``tasks`` (small results, named ``f"{prefix}-..."``) at most ``in_flight`` at a
    time, counting each finished one on ``bar``; also used by ``daskgp predict``.

    Locally, groups of ``in_flight`` tasks go to the scheduler together (one process pool for
    the whole job); on a ``distributed.Client``, a sliding window of futures.
    """
    if is_client(scheduler):
        _run_distributed(iter(tasks), scheduler, in_flight, bar)
    else:
        _run_local(iter(tasks), scheduler, in_flight, bar, prefix)


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
) -> PrecomputeSummary:
    """Write batches ``0 .. num_batches - 1`` of ``pipeline`` for ``request`` to a zarr group.

    Batch i is ``request.in_sequence(seed, i)`` planned and built through the pipeline: the
    batch that ``gp.build(pipeline, seed=seed)`` returns as its i-th ``request_batch``, so a
    rerun gives the same bits. The group at ``path`` gets one array per requested key (named
    after the key, shape ``(num_batches, *batch_shape)``, one chunk per batch, attributes
    giving the ROI, ``resolution``/``offset``, dtype, seed and N) and a ``_completed`` array.
    Each batch's arrays are written by one task, which marks the batch complete after its data;
    a rerun skips completed batches and rewrites none of them; a rerun with a larger
    ``num_batches`` (same pipeline, request and seed) grows the output and writes only the new
    batches. The output is locked for the job (``daskgp.io.locks``): a second job on it fails
    at once naming the holder; ``pipeline_hash`` (the CLI's pipeline file fingerprint) is
    stored, and an output of another pipeline refused unless ``overwrite``. Each batch's
    checksum per array is stored in ``_checksums`` (``PrecomputedSource`` and ``daskgp
    verify`` check it). Batches run in parallel on the
    scheduler: locally ``batches_in_flight`` at a time in groups, on a ``distributed.Client``
    as a sliding window of futures. Memory: about ``batches_in_flight x batch_bytes`` plus the
    scheduler's working set.

    Args:
        pipeline (Pipeline or BatchProvider): what makes the batches.
        request (BatchRequest): the request of every batch (its own seed is replaced).
        path (str or os.PathLike): the zarr group to write (created, or resumed).
        num_batches (int): how many batches.
        seed (int, optional): base seed; by default the stored one when resuming, else 0.
        scheduler (str, optional): ``"sync"``, ``"threads"`` or ``"processes"`` (dask's
            default when None).
        client (distributed.Client, optional): compute on this cluster instead.
        batches_in_flight (int, optional): batches computed at once (default: twice the
            cores or the cluster's threads).
        progress (bool): show a tqdm progress bar of completed batches.
        pipeline_hash (str, optional): the pipeline's fingerprint, part of the identity.
        overwrite (bool): discard what a precompute output at ``path`` holds, and start anew.
        force (bool): take the output's lock even if it is held (its holder is known dead).

    Example:
        >>> precompute(pipeline, request, "batches.zarr", num_batches=1000)  # doctest: +SKIP
    """
    path = os.fspath(path)
    if int(num_batches) < 1:
        raise PipelineSetupError(f"precompute: num_batches must be >= 1, got {num_batches}")
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
        seed = int(seed) if seed is not None else (stored.seed if stored is not None else 0)
        return _precompute(pipeline, request, path, int(num_batches), seed, stored, scheduler,
                           in_flight, progress, pipeline_hash)


def _precompute(pipeline: Pipeline, request: BatchRequest, path: str, num_batches: int,
                seed: int, stored: PrecomputeLayout | None, scheduler, in_flight: int,
                progress: bool, pipeline_hash: str | None) -> PrecomputeSummary:
    """The job, once the output is locked and ``stored`` (its layout, or None) read."""
    with build(pipeline, scheduler=scheduler, seed=seed) as p:
        completed = np.zeros(num_batches, bool)
        if stored is not None:
            found = read_completed(path, stored.num_batches)
            completed[:min(len(found), num_batches)] = found[:num_batches]
        pending = [int(i) for i in np.flatnonzero(~completed)]
        # The probe is planned, never computed; it is the first pending batch, reused below.
        first = pending[0] if pending else 0
        # A finished output's probe only describes the layout: numpy nodes are not run.
        with contextlib.nullcontext() if pending else without_learning():
            probe = p.request_lazy_batch(request.in_sequence(seed, first))
        layout = PrecomputeLayout(int(num_batches), seed, tuple(
            StoredArray.from_array(key, probe[key].data, probe[key].spec)
            for key, spec in request.array_specs.items() if not spec.placeholder
        ), pipeline_hash)
        if stored is not None and (differences := stored.differences(layout)):
            raise PipelineSetupError(
                f"precompute: {path} holds a different output; nothing was written (rerun "
                "with --overwrite to replace it, or write elsewhere). Differences: "
                + "; ".join(differences)
            )
        if stored is not None and num_batches > stored.num_batches:
            _grow(path, stored, layout)
        _require_arrays(path, layout, new=stored is None)

        writes = (_plan_write(p, request, path, layout, i, probe if i == first else None)
                  for i in pending)
        done = num_batches - len(pending)
        with tqdm(total=num_batches, initial=done, unit="batch", desc="precompute",
                  disable=not progress) as bar:
            compute_tasks(writes, scheduler, in_flight, bar, WRITE_PREFIX)
    return PrecomputeSummary(path, num_batches, seed, written=len(pending), skipped=done)


def _warn_about_pre_cache(pipeline: Pipeline) -> None:
    from .nodes.pre_cache import PreCache

    if any(isinstance(node, PreCache) for node in pipeline.nodes()):
        logger.warning(
            "precompute: the pipeline contains a PreCache, which computes every batch in the "
            "driver while it is planned; remove it: precompute computes batches in parallel"
        )
