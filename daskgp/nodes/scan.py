"""``Scan``: tiles a large request (or the whole upstream ROI) with a reference request, as one
dask graph; writers upstream (``ZarrWrite``, ``Hdf5Write``) put the tiles on disk."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.callbacks import Callback

from ..batch import Array, Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph import join_parts
from ..io.blocks import ScanTiling, WriteBlocks, scan_tiling, writing_blocks
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import SEED_MODULUS, BatchRequest
from ..scheduling import current_scheduler, is_client
from .scan_callback import ScanCallback, ScanCallbackCalls

logger = logging.getLogger(__name__)

_SCAN_IDS = itertools.count()


class Scan(BatchFilter):
    """Request ``reference``-sized batches from upstream in a scanning fashion until the
    requested ROIs are covered, as gunpowder's ``Scan``, but as one lazy dask graph.

    The reference is shifted with a stride of its smallest ROI shape (the output size); the
    last tile along each axis is clamped to end where the scanned ROI ends, so everything is
    covered. For each tile the upstream batch is planned and built (never computed), with a
    seed derived from this request's seed and the tile's index. Each tile owns the part of its
    arrays that no earlier tile covers: with a non-empty request, each requested array is
    assembled lazily from the owned parts (``da.block``), so no whole output is ever buffered
    in the driver (gunpowder allocates it in numpy). With an empty request, the whole upstream
    ROI of the reference keys is scanned and an empty batch returned whose
    ``side_effects`` are the tiles' writes (``ZarrWrite``/``Hdf5Write`` between the model and
    the ``Scan``, which write the block each tile owns); ``request_batch`` computes them, all
    in one graph. Only what the side effects need is computed: tiles nothing writes are not.
    Graphs in the reference are scanned too: each tile contributes the nodes in the part of
    the graph's ROI it owns (graphs are built in the driver), joined into one graph with the
    edges of all tiles (``graph.join_parts``).

    Parallelism and memory are the scheduler's: one graph holds all tiles, and dask orders the
    work to finish tiles (and free their memory) before starting many new ones; the threaded
    scheduler runs one task per core, a ``distributed`` cluster its workers' threads (and
    queues root tasks). ``num_workers`` and ``cache_size`` are checked and kept for gunpowder
    compatibility but do not change the graph; to bound the tiles in flight explicitly,
    compute the per-tile side effects (below) in groups.

    With a ``progress_callback``, ``side_effects`` holds exactly one ``Delayed`` per tile, in
    C order of the tile grid, named ``f"scan-{token}-tile-{i}-{j}-{k}"`` after the tile's
    index; it waits on the tile's writes (and its part of the output).

    Args:
        reference (BatchRequest): the request shifted over the scanned ROI; its smallest
            ROI shape is the stride, which must be a multiple of the voxel sizes.
        num_workers (int): gunpowder compatibility (see above); must be >= 1.
        cache_size (int): gunpowder compatibility (see above); must be >= 1.
        progress_callback (ScanCallback or callable, optional): gunpowder's
            ``ScanCallback`` (``start(total)`` when the graph is built, ``update(done)``,
            ``stop()`` after the last tile), or ``progress_callback(done, total)``, called
            in the driver each time a tile's writes (and, with a non-empty request, its part of
            the output) are computed. It works when the batch is computed on the pipeline's
            scheduler: local schedulers report through dask's local callbacks, a
            ``distributed.Client`` through worker events.

    Example:
        >>> raw, pred = ArrayKey("RAW"), ArrayKey("PRED")
        >>> reference = gp.BatchRequest()
        >>> reference.add(raw, (40, 40, 40))
        >>> reference.add(pred, (20, 20, 20))
        >>> scan = gp.Scan(reference, progress_callback=lambda done, total: None)
        >>> # source + model + gp.ZarrWrite({pred: "pred"}, store="out.zarr") + scan
    """

    lazy = True

    def __init__(self, reference: BatchRequest, num_workers: int = 1, cache_size: int = 50,
                 progress_callback: ScanCallback | Callable[[int, int], None] | None = None
                 ) -> None:
        if not isinstance(reference, BatchRequest) or not reference.array_specs:
            raise PipelineSetupError(
                f"Scan: reference must be a BatchRequest with at least one array, got "
                f"{reference!r}"
            )
        for key, spec in reference.items():
            if spec.roi is None or spec.roi.unbounded or getattr(spec, "nonspatial", False):
                raise PipelineSetupError(
                    f"Scan: reference {key} needs a bounded spatial ROI, got {spec.roi}"
                )
        if num_workers < 1 or cache_size < 1:
            raise PipelineSetupError(
                f"Scan: num_workers and cache_size must be >= 1, got {num_workers} and "
                f"{cache_size}"
            )
        self.reference = reference.copy()
        self.num_workers = num_workers
        self.cache_size = cache_size
        self.progress_callback = progress_callback
        self._reporters: list[_Progress] = []

    def setup(self) -> None:
        self._stop_reporters()

    def provide(self, request: BatchRequest) -> Batch:
        empty = len(request) == 0
        tiling, blocks = self.tiling_for(request)
        prefix = f"{task_prefix(self.name())}-{tokenize(request, tiling, self.node_id)}"
        logger.info("%s: scanning %d tiles of stride %s", self.name(),
                    int(np.prod(tiling.grid_shape)), tiling.stride)

        parts: dict[ArrayKey, dict] = {key: {} for key in request.array_specs}
        graph_parts: dict = {key: [] for key in request.graph_specs}
        side_effects, markers = [], []
        for index in tiling.indices():
            tile, owned = self.plan_tile(request, tiling, blocks, index)
            for key, graph_parts_of_key in graph_parts.items():
                graph_parts_of_key.append(
                    tile[key].crop(tiling.owned_roi(self.reference[key].roi, index)))
            for key in parts:
                part = tile[key].crop(owned[key], copy=False).data
                parts[key][index] = part if isinstance(part, da.Array) else da.from_array(
                    part, chunks=-1, name=False)  # computed upstream (a PreCache)
            if self.progress_callback is None:
                side_effects += tile.side_effects
                continue
            waits = [*tile.side_effects, *(_done_flags(parts[key][index]) for key in parts)]
            name = f"{prefix}-tile-" + "-".join(map(str, index))
            markers.append(name)
            side_effects.append(dask.delayed(_TileDone(prefix), pure=True)(
                name, *itertools.chain.from_iterable(map(_as_delayed, waits)),
                dask_key_name=name))
        if empty and not side_effects and not self._writer_upstream():
            logger.warning("%s: empty request but nothing upstream writes (no ZarrWrite or "
                           "Hdf5Write between the model and the Scan): nothing to compute",
                           self.name())
        if markers:
            callback = self.progress_callback
            if isinstance(callback, ScanCallback):
                callback.start(len(markers))
                callback = ScanCallbackCalls(callback)
            reporter = _Progress(callback, markers, current_scheduler(), prefix)
            self._reporters = [r for r in self._reporters if r.active] + [reporter]
            reporter.start()

        batch = Batch()
        for key, spec in request.array_specs.items():
            array_spec = self.spec[key].copy()
            array_spec.roi = spec.roi
            batch[key] = Array(da.block(_nested(tiling.grid_shape, parts[key])), array_spec)
        for key, spec in request.graph_specs.items():
            graph_spec = self.spec[key].copy()
            graph_spec.roi = spec.roi
            batch[key] = join_parts(graph_parts[key], graph_spec)
        batch.side_effects = side_effects
        return batch

    def tiling_for(self, request: BatchRequest) -> tuple[ScanTiling, WriteBlocks]:
        """The tiles that cover ``request`` (empty: the whole upstream ROI of the reference
        keys) and the blocks writers upstream create their datasets for; plans nothing.

        Used by ``provide`` and by ``daskgp predict``, which plans the tiles itself.
        """
        empty = len(request) == 0
        self._check_keys(request)
        tiling = scan_tiling(self._shift_roi(self.spec if empty else request), self._stride())
        total_rois = {key: tiling.total_roi(spec.roi)
                      for key, spec in self.reference.array_specs.items()}
        total_rois.update({key: tiling.total_roi(spec.roi)
                           for key, spec in self.reference.graph_specs.items()})
        for key, spec in request.items():
            if spec.roi != total_rois[key]:
                raise BatchRequestError(
                    f"{self.name()}: {key} is requested with ROI {spec.roi}, but the tiles of "
                    f"the reference cover {total_rois[key]} of it (other reference keys "
                    "constrain where tiles fit); request a ROI the tiles cover"
                )
        return tiling, WriteBlocks(total_rois, tiling.stride, scan_id=next(_SCAN_IDS))

    def owned_rois(self, tiling: ScanTiling, index: tuple[int, ...]) -> dict:
        """The block of each reference key that tile ``index`` owns (and writes)."""
        return {key: tiling.owned_roi(spec.roi, index)
                for key, spec in self.reference.array_specs.items()}

    def plan_tile(self, request: BatchRequest, tiling: ScanTiling, blocks: WriteBlocks,
                  index: tuple[int, ...]) -> tuple[Batch, dict]:
        """Plan and build (never compute) tile ``index``: its upstream batch, whose side
        effects write the blocks it owns, and those owned ROIs."""
        owned = self.owned_rois(tiling, index)
        with writing_blocks(dataclasses.replace(blocks, write_rois=owned)):
            tile = self.get_upstream_provider().request_batch(
                self._tile_request(request, tiling, index))
        return tile, owned

    def _writer_upstream(self) -> bool:
        """Whether a node upstream writes (a writer whose writes a node that computes, such
        as ``PrintProfilingStats``, already ran while the tiles were planned)."""
        from ..io.dataset_writer import DatasetWrite

        pending = [self.get_upstream_provider()]
        while pending:
            node = pending.pop()
            if isinstance(node, DatasetWrite):
                return True
            pending += node.get_upstream_providers()
        return False

    def _check_keys(self, request: BatchRequest) -> None:
        for key, spec in request.items():
            if key not in self.reference:
                raise BatchRequestError(
                    f"{self.name()}: {key} is requested but not in the reference "
                    f"{self.reference.keys()}, so no tile provides it"
                )
            if getattr(spec, "nonspatial", False):
                raise BatchRequestError(f"{self.name()}: cannot scan the nonspatial {key}")

    def _stride(self) -> Coordinate:
        """The smallest reference shape per axis: tiles of it cover space without gaps."""
        shapes = [spec.roi.shape for spec in self.reference.array_specs.values()]
        stride = Coordinate(min(s[d] for s in shapes) for d in range(shapes[0].dims))
        voxel_size = self.spec.get_lcm_voxel_size(self.reference.array_specs.keys())
        if voxel_size is not None and not stride.is_multiple_of(voxel_size):
            raise BatchRequestError(
                f"{self.name()}: the stride {stride} (smallest reference shape) is not a "
                f"multiple of the voxel sizes' least common multiple {voxel_size}"
            )
        return stride

    def _shift_roi(self, scan_spec) -> Roi:
        """All shifts of the reference that keep each of its ROIs inside ``scan_spec``."""
        shift_roi = None
        for key, reference_spec in self.reference.array_specs.items():
            if key not in scan_spec or scan_spec[key].roi is None or scan_spec[key].roi.unbounded:
                continue
            roi, reference_roi = scan_spec[key].roi, reference_spec.roi
            if any(r > s for r, s in zip(reference_roi.shape, roi.shape, strict=True)):
                raise BatchRequestError(
                    f"{self.name()}: reference {key} with ROI {reference_roi} does not fit "
                    f"into the scanned ROI {roi}"
                )
            shifts = Roi(roi.begin - reference_roi.begin,
                         roi.shape - reference_roi.shape + Coordinate((1,) * roi.dims))
            shift_roi = shifts if shift_roi is None else shift_roi.intersect(shifts)
            if shift_roi.empty:
                raise BatchRequestError(
                    f"{self.name()}: there is no shift of the reference that fits all of its "
                    f"ROIs into the scanned ROIs; reference:\n{self.reference}\nscanned:\n"
                    f"{scan_spec}"
                )
        if shift_roi is None:
            raise BatchRequestError(
                f"{self.name()}: none of the reference keys {self.reference.keys()} has a "
                "bounded ROI to scan; Scan needs at least one"
            )
        return shift_roi

    def _tile_request(self, request: BatchRequest, tiling: ScanTiling,
                      index: tuple[int, ...]) -> BatchRequest:
        tile_request = self.reference.copy()
        shift = tiling.shift(index)
        for _, spec in tile_request.items():
            spec.roi = spec.roi.shift(shift)
        seed = self.rng(request, "tile", *index).integers(SEED_MODULUS)
        tile_request.random_seed = int(seed)
        return tile_request

    def teardown(self) -> None:
        self._stop_reporters()

    def _stop_reporters(self) -> None:
        for reporter in self._reporters:
            reporter.stop()
        self._reporters = []


def _nested(grid_shape: tuple[int, ...], parts: dict, index: tuple[int, ...] = ()):
    """``parts`` (tile index -> array) as nested lists for ``da.block``."""
    if len(index) == len(grid_shape):
        return parts[index]
    return [_nested(grid_shape, parts, (*index, i)) for i in range(grid_shape[len(index)])]


def _done_flags(data: da.Array) -> da.Array:
    """One tiny task per block of ``data``, done when that block is: what a tile's progress
    marker waits on without gathering the tile's data into one task."""
    return data.map_blocks(_flag, chunks=tuple((1,) * len(c) for c in data.chunks), dtype=bool,
                           meta=np.empty((0,) * data.ndim, dtype=bool))


def _flag(block: np.ndarray) -> np.ndarray:
    return np.ones((1,) * block.ndim, dtype=bool)


def _as_delayed(collection) -> list:
    """``collection`` as ``Delayed`` objects to wait on. Arrays are split into their blocks
    unoptimized: passing an array to ``dask.delayed`` would build its whole graph now."""
    if isinstance(collection, da.Array):
        return list(collection.to_delayed(optimize_graph=False).ravel())
    return [collection]


class _TileDone:
    """The last task of a tile: on a ``distributed`` worker it logs the tile as done under
    ``topic`` (the scan's task prefix)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def __call__(self, name: str, *done) -> str:
        try:
            from distributed import get_worker

            get_worker().log_event(self.topic, name)
        except (ImportError, ValueError):  # not on a distributed worker: the driver sees it
            pass
        return name

    def __dask_tokenize__(self) -> tuple:
        return ("_TileDone", self.topic)


class _Progress(Callback):
    """Calls ``callback(done, total)`` in the driver as the tiles' marker tasks finish: dask's
    local callbacks on local schedulers, worker events on a ``distributed.Client``."""

    def __init__(self, callback: Callable[[int, int], None], markers: list[str],
                 scheduler, topic: str) -> None:
        super().__init__()
        self.topic = topic
        self.callback = callback
        self.total = len(markers)
        self.pending = set(markers)
        self.client = scheduler if is_client(scheduler) else None
        self.active = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self.active = True
        if self.client is not None:
            self.client.subscribe_topic(self.topic, lambda event: self._tile_done(event[1]))
        else:
            # Registered globally, so that the compute of ``request_batch`` reports. Keep the
            # set registered into: during a compute dask swaps ``Callback.active`` for an
            # empty set and puts this one back after, so ``stop`` must edit this one.
            self._registry = Callback.active
            self._registry.add(self._callback)

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        self._tile_done(key)

    def _tile_done(self, key) -> None:
        with self._lock:
            if key not in self.pending:
                return
            self.pending.discard(key)
            done = self.total - len(self.pending)
        self.callback(done, self.total)
        if not self.pending:
            self.stop()

    def stop(self) -> None:
        with self._lock:
            if not self.active:
                return
            self.active = False
        if self.client is not None:
            self.client.unsubscribe_topic(self.topic)
        else:
            self._registry.discard(self._callback)
