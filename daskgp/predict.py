"""Blockwise prediction jobs: a pipeline scanned over a volume, its outputs written to zarr.

Resumable per block: a rerun skips the tiles already written. ``daskgp predict`` parses its
arguments in ``daskgp.cli``; the tiling and the writes are ``Scan``'s and ``ZarrWrite``'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dask
import numpy as np
import zarr
from dask.base import tokenize
from tqdm import tqdm

from .errors import PipelineSetupError
from .geometry import Roi
from .keys import ArrayKey
from .names import NodeTask
from .nodes.crop import Crop
from .nodes.scan import Scan
from .nodes.zarr_write import ZarrWrite
from .pipeline import Pipeline, build
from .precompute import compute_tasks, default_in_flight
from .request import BatchRequest
from .scheduling import resolve_scheduler

#: uint8 array in the output, one chunk per tile: 1 once the tile's blocks are written.
COMPLETED_TILES = "_completed_tiles"
#: Name prefix of the tasks that mark a tile complete, one per tile.
DONE_PREFIX = "predict-done"

_TILE_NAME = re.compile(r"-tile-(\d+(?:-\d+)*)$")


@dataclass(frozen=True)
class PredictSummary:
    """What a ``predict`` run did."""

    path: str
    outputs: dict
    num_tiles: int
    written: int
    skipped: int


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


def _tile_indices(tiles: list) -> list[tuple[int, ...]]:
    """Each tile marker's index in the scan grid, read from its task name."""
    indices = []
    for tile in tiles:
        match = _TILE_NAME.search(str(tile.key))
        if match is None:
            raise PipelineSetupError(
                f"predict: Scan returned a side effect {tile.key!r} that is not a tile marker; "
                "is a node that writes (Snapshot) between the model and the Scan?"
            )
        indices.append(tuple(int(i) for i in match.group(1).split("-")))
    return indices


def _scan_token(reference: BatchRequest, roi: Roi | None, outputs: dict) -> str:
    """What identifies a job's tiling: its reference, ROI and outputs (stable across runs)."""
    return tokenize(repr(reference), str(roi), sorted((str(k), v) for k, v in outputs.items()))


def _check_record(path: str, token: str) -> None:
    """Refuse, before anything is created, an output whose tiles another job recorded."""
    try:
        record = zarr.open_array(path, path=COMPLETED_TILES, mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        return
    if record.attrs.get("job") != token:
        raise PipelineSetupError(
            f"predict: {path} holds the tiles of another job (another reference, ROI or "
            "outputs); nothing was written (write elsewhere, or remove the output)"
        )


def _require_record(path: str, indices: list[tuple[int, ...]], token: str) -> np.ndarray:
    """Completion marks of the tiles (created all False)."""
    root = zarr.open_group(path, mode="r+")
    num_tiles = len(indices)
    grid = [int(g) + 1 for g in np.max(indices, axis=0)] if indices else []
    if COMPLETED_TILES in root:
        record = root[COMPLETED_TILES]
        if record.shape != (num_tiles,) or record.attrs.get("grid_shape") != grid:
            raise PipelineSetupError(
                f"predict: {path} records {record.shape[0]} tiles in a grid of "
                f"{record.attrs.get('grid_shape')}, but this job has {num_tiles} in {grid}; "
                "nothing was written (write elsewhere, or remove the output)"
            )
        return np.asarray(record[:]).astype(bool)
    root.create_array(COMPLETED_TILES, shape=(num_tiles,), chunks=(1,), dtype=np.uint8,
                      fill_value=0, attributes={"grid_shape": grid, "job": token},
                      config={"write_empty_chunks": True})
    return np.zeros(num_tiles, bool)


def _mark_tile(path: str, index: int, *written) -> int:
    """Mark tile ``index`` complete, after its writes (``written``). Runs in a task."""
    zarr.open_array(path, path=COMPLETED_TILES, mode="r+")[index] = 1
    return index


def _ignore_progress(done: int, total: int) -> None:
    """Scan's per-tile progress callback: ``predict`` counts its own completion tasks."""


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
) -> PredictSummary:
    """Scan ``pipeline`` with ``reference`` over a volume and write its outputs to zarr.

    The job is ``pipeline [+ Crop(output, roi)...] + ZarrWrite(outputs) + Scan(reference)``
    asked for an empty request: every tile owns one block of each output (chunks of the
    scan's stride) and writes it in its own tasks. After a tile's blocks are written, a task
    marks it in the ``_completed_tiles`` array of the output; a rerun of the same job skips
    the marked tiles and rewrites none of their chunks. Tiles run ``tiles_in_flight`` at a
    time (groups locally, a sliding window of futures on a cluster).

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

    token = _scan_token(reference, roi, outputs)
    _check_record(path, token)
    job = pipeline
    if roi is not None:
        for key in outputs:
            job = job + Crop(key, roi)
    job = job + ZarrWrite(outputs, store=path) + Scan(reference, progress_callback=_ignore_progress)
    with build(job, scheduler=scheduler, seed=0) as p:
        # Plans every tile (datasets are created or checked here); computes nothing.
        tiles = p.request_lazy_batch(BatchRequest()).side_effects
        indices = _tile_indices(tiles)
        completed = _require_record(path, indices, token)
        pending = [i for i in range(len(tiles)) if not completed[i]]
        marks = (dask.delayed(NodeTask(_mark_tile, "predict"), pure=True)(
                     path, i, tiles[i], dask_key_name=f"{DONE_PREFIX}-{i}-{token}")
                 for i in pending)
        done = len(tiles) - len(pending)
        with tqdm(total=len(tiles), initial=done, unit="tile", desc="predict",
                  disable=not progress) as bar:
            compute_tasks(marks, scheduler, in_flight, bar, DONE_PREFIX)
    return PredictSummary(path, {str(k): v for k, v in outputs.items()}, len(tiles),
                          written=len(pending), skipped=done)
