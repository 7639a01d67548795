"""Blockwise prediction jobs: a pipeline scanned over a volume, its outputs written to zarr.

Resumable per block: a rerun skips the tiles already written. ``daskgp predict`` parses its
arguments in ``daskgp.cli``; the tiling and the writes are ``Scan``'s and ``ZarrWrite``'s.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import zarr
from dask.base import tokenize
from tqdm import tqdm

from .errors import PipelineSetupError
from .geometry import Roi
from .io.checksums import default_checksum
from .io.locks import OutputLock
from .io.tile_record import COMPLETED_TILES, TILE_CHECKSUMS, TileRecord, open_record
from .job_runner import Shared, Unit, run_units
from .keys import ArrayKey
from .nodes.crop import Crop
from .nodes.scan import Scan
from .nodes.zarr_write import ZarrWrite
from .pipeline import Pipeline, build
from .precompute import default_in_flight
from .request import BatchRequest
from .scheduling import resolve_scheduler
from .tile_plan import TilePlanner, run_tile

__all__ = ["COMPLETED_TILES", "PredictSummary", "TILE_CHECKSUMS", "job_identity",
           "output_keys", "predict"]

@dataclass(frozen=True)
class PredictSummary:
    """What a ``predict`` run did."""

    path: str
    outputs: dict
    num_tiles: int
    written: int
    skipped: int
    #: How the tiles were planned: "once per kind of tile (N plans)" or "per tile: <why>".
    planning: str = ""


def output_keys(pipeline: Pipeline, reference: BatchRequest) -> list[ArrayKey]:
    """The keys of ``reference`` that no source provides: what the model makes.

    Sets the pipeline up (and tears it down) to learn what its sources provide.
    """
    sourced: set = set()
    with build(pipeline, scheduler="sync"):
        pipeline.traverse(lambda node: sourced.update(node.output.provided_items)
                          if not node.children else None)
    return [key for key in reference.array_specs if key not in sourced]


def _outputs(pipeline: Pipeline, reference: BatchRequest, outputs) -> dict[ArrayKey, str]:
    if outputs is None:
        outputs = output_keys(pipeline, reference)
    if not isinstance(outputs, Mapping):
        outputs = {key: key.identifier for key in outputs}
    if not outputs:
        raise PipelineSetupError(
            f"predict: the reference asks for {reference.keys()}, all provided by sources: "
            "there is no output to write; name the outputs (`outputs` in the pipeline file)"
        )
    for key, dataset in outputs.items():
        if not isinstance(key, ArrayKey) or not isinstance(dataset, str):
            raise PipelineSetupError(
                f"predict: outputs must map ArrayKey -> dataset name (or list ArrayKeys), got "
                f"{key!r}: {dataset!r}"
            )
        if key not in reference.array_specs:
            raise PipelineSetupError(
                f"predict: output {key} is not in the reference request {reference.keys()}"
            )
    return dict(outputs)


def job_identity(reference: BatchRequest, roi: Roi | None, outputs: dict,
                 pipeline_hash: str | None) -> tuple[str, str]:
    """(tiling token, job token): what a job's tiles are (reference, ROI, outputs), and that
    plus the pipeline's fingerprint (``daskgp.io.checksums.pipeline_fingerprint``: the
    pipeline file, the local modules it imports and the checkpoints it names).

    Example:
        >>> tiling, job = job_identity(BatchRequest(), None, {}, "abc")
        >>> job != job_identity(BatchRequest(), None, {}, "abd")[1]
        True
    """
    tiling = tokenize(repr(reference), str(roi), sorted((str(k), v) for k, v in outputs.items()))
    return tiling, tokenize(tiling, pipeline_hash)


def _check_record(path: str, tiling: str, job: str) -> None:
    """Refuse, before anything is written, an output whose tiles another job recorded."""
    record = open_record(path)
    if record is None or record.attrs.get("job") == job:
        return
    if record.attrs.get("tiling") == tiling:
        raise PipelineSetupError(
            f"predict: {path} holds the tiles of another job: the pipeline (its file or model "
            "checkpoint) changed since they were written, so they are stale; nothing was "
            "written (rerun with --overwrite to recompute every tile, or write elsewhere)"
        )
    raise PipelineSetupError(
        f"predict: {path} holds the tiles of another job (another reference, ROI, outputs or "
        "pipeline); nothing was written (write elsewhere, or rerun with --overwrite)"
    )


def _discard(path: str, outputs: dict) -> None:
    """``overwrite``: forget the record and remove the datasets this job writes."""
    try:
        root = zarr.open_group(path, mode="r+")
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        return
    for name in (COMPLETED_TILES, TILE_CHECKSUMS, *outputs.values()):
        if name in root:
            del root[name]


def _record_attrs(scan: Scan, tiling, outputs: dict, tiling_token: str, job: str,
                  pipeline_hash: str | None) -> dict:
    """What the record says about the job: identity, tiling and outputs (``daskgp verify``
    recomputes every tile's blocks from it)."""
    return {
        "job": job, "tiling": tiling_token, "pipeline": pipeline_hash,
        "checksum": default_checksum(),
        "grid_shape": [int(g) for g in tiling.grid_shape],
        "positions": [[int(p) for p in axis] for axis in tiling.positions],
        "stride": [int(s) for s in tiling.stride],
        "outputs": [{"key": str(key), "dataset": dataset,
                     "reference_offset": [int(b) for b in scan.reference[key].roi.begin],
                     "reference_shape": [int(b) for b in scan.reference[key].roi.shape]}
                    for key, dataset in outputs.items()],
    }


def predict(
    pipeline,
    reference: BatchRequest,
    path: str | os.PathLike,
    outputs: Mapping[ArrayKey, str] | Iterable[ArrayKey] | None = None,
    roi: Roi | None = None,
    scheduler=None,
    client=None,
    tiles_in_flight: int | None = None,
    progress: bool = True,
    pipeline_hash: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    plan_once: bool = True,
    max_tiles: int | None = None,
) -> PredictSummary:
    """Scan ``pipeline`` with ``reference`` over a volume and write its outputs to zarr.

    The job is ``pipeline [+ Crop(output, roi)...] + ZarrWrite(outputs) + Scan(reference)``
    over everything the pipeline provides: every tile owns one block of each output (chunks
    of the scan's stride) and writes it in one task. Planning is O(1) per tile: a
    translation-equivariant pipeline (``daskgp.tile_plan.equivariance_problem``) is planned
    for one tile of each kind (interior, clamped last tiles) and that plan is shifted to the
    others; any other pipeline is planned tile by tile as the window needs them. Tiles are
    submitted ``tiles_in_flight`` at a time from a lazy generator (a thread or process pool
    locally, futures on a cluster), so the driver holds only the window's graphs and the
    first tile is written within seconds on any volume.

    The output is locked for the job (``daskgp.io.locks``): a second job on it fails at once,
    naming the holder. As tiles finish, the driver marks them (and their blocks' checksums,
    for ``daskgp verify``) in the ``_completed_tiles`` and ``_tile_checksums`` arrays of the
    output, a few times a second; a rerun of the same job skips the marked tiles and rewrites
    none of their chunks. The job's identity covers the reference, ROI and outputs and
    ``pipeline_hash`` (the CLI passes the pipeline file's and checkpoints' fingerprint): an
    output recorded by another job is refused, unless ``overwrite``.

    Args:
        pipeline (Pipeline or BatchProvider): sources, then the model.
        reference (BatchRequest): one tile's request, inputs (with context) and outputs.
        path (str or os.PathLike): the zarr container of the outputs.
        outputs (dict ArrayKey -> str, or list of ArrayKey, optional): what to write and the
            dataset names; by default the reference keys no source provides, named after
            their keys.
        roi (Roi, optional): the output ROI to predict (world units); by default everything
            the pipeline can provide.
        scheduler (str, optional): ``"sync"``, ``"threads"`` or ``"processes"``.
        client (distributed.Client, optional): compute on this cluster instead.
        tiles_in_flight (int, optional): tiles computed at once (default: twice the cores or
            the cluster's threads).
        progress (bool): show a tqdm progress bar of completed tiles.
        pipeline_hash (str, optional): the pipeline's fingerprint, part of the job identity.
        overwrite (bool): discard the record and the outputs' datasets and recompute all.
        force (bool): take the output's lock even if it is held (its holder is known dead).
        plan_once (bool): False plans every tile (for pipelines whose position dependence
            the detection misses).
        max_tiles (int, optional): stop after this many tiles (trial runs, benchmarks); a
            rerun continues.

    Example:
        >>> predict(source + model, reference, "prediction.zarr")  # doctest: +SKIP
    """
    path = os.fspath(path)
    pipeline = Pipeline.to_pipeline(pipeline)
    if not isinstance(reference, BatchRequest):
        raise PipelineSetupError(f"predict: reference must be a BatchRequest, got {reference!r}")
    scheduler = resolve_scheduler(scheduler, client)
    in_flight = int(tiles_in_flight if tiles_in_flight is not None
                    else default_in_flight(scheduler))
    if in_flight < 1:
        raise PipelineSetupError(f"predict: tiles_in_flight must be >= 1, got {in_flight}")
    outputs = _outputs(pipeline, reference, outputs)
    tiling_token, job_token = job_identity(reference, roi, outputs, pipeline_hash)

    with OutputLock(path, job_token, " ".join(sys.argv) or "predict").acquire(force):
        if overwrite:
            _discard(path, outputs)
        _check_record(path, tiling_token, job_token)
        scan = Scan(reference)
        job = pipeline
        if roi is not None:
            for key in outputs:
                job = job + Crop(key, roi)
        job = job + ZarrWrite(outputs, store=path) + scan
        with build(job, scheduler=scheduler, seed=0):
            tiling, blocks = scan.tiling_for(BatchRequest())
            num_tiles = int(np.prod(tiling.grid_shape))
            record = TileRecord.require(
                path, num_tiles, _record_attrs(scan, tiling, outputs, tiling_token, job_token,
                                               pipeline_hash), len(outputs))
            planner = TilePlanner(scan, job, tiling, blocks, len(outputs), plan_once,
                                  tuple(outputs))
            done = int(record.completed.sum())
            todo = num_tiles - done if max_tiles is None else min(max_tiles, num_tiles - done)
            written = 0

            def finished(index: int, checksums) -> None:
                nonlocal written
                record.mark(index, checksums)
                record.flush(force=False)
                written += 1
                bar.update(1)

            with tqdm(total=num_tiles, initial=done, unit="tile", desc="predict",
                      disable=not progress) as bar:
                try:
                    run_units(_tile_units(planner, record, todo), scheduler, in_flight,
                              finished)
                finally:
                    record.flush()
            planning = (f"per tile: {planner.problem}" if planner.problem else
                        f"once per kind of tile ({planner.plans_made} plans)")
    return PredictSummary(path, {str(k): v for k, v in outputs.items()}, num_tiles,
                          written=written, skipped=done, planning=planning)


def _pending(completed: np.ndarray, grid: tuple[int, ...], step: int = 4096
             ) -> Iterator[tuple[int, tuple[int, ...]]]:
    """(flat index, grid index) of the tiles not marked in ``completed``, in C order, found
    ``step`` tiles at a time (the driver never lists every tile).

    Example:
        >>> list(_pending(np.array([True, False, False, True]), (2, 2), step=3))
        [(1, (0, 1)), (2, (1, 0))]
    """
    for start in range(0, len(completed), step):
        flats = start + np.flatnonzero(~completed[start:start + step])
        if flats.size:
            indices = np.stack(np.unravel_index(flats, grid), axis=1).tolist()
            yield from zip(flats.tolist(), map(tuple, indices), strict=True)


def _tile_units(planner: TilePlanner, record: TileRecord, limit: int) -> Iterator[Unit]:
    """The pending tiles as job units, planned lazily (C order of the grid)."""
    shared: dict[int, Shared] = {}
    for flat, index in itertools.islice(_pending(record.completed, planner.tiling.grid_shape),
                                        limit):
        plan, shift, is_shared = planner.plan(index)
        if is_shared:
            plan = shared.setdefault(id(plan), Shared(plan))
        yield flat, run_tile, (plan, shift, record.algorithm)
