"""Run gunpowder-style numpy nodes (``lazy = False``) inside dask tasks, unchanged.

A numpy node's ``provide``/``process`` runs in one task per batch on materialized inputs, with
``random`` and ``numpy.random`` seeded from the request; outputs become dask arrays again.
"""

from __future__ import annotations

import contextlib
import random
import threading

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from .batch import Array, Batch
from .errors import ArrayError, PipelineRequestError
from .names import NodeTask, task_prefix
from .request import BatchRequest
from .seeds import derive_seed
from .specs import ArraySpec

# Old nodes draw from the global RNGs; seeding them is only deterministic one node at a time.
_GLOBAL_RNG_LOCK = threading.RLock()


def _seed_globals(node, request: BatchRequest, phase: str) -> None:
    seed = derive_seed(request.random_seed or 0, node.node_id, node.name(), phase)
    random.seed(seed)
    np.random.seed(seed)


@contextlib.contextmanager
def _seeded_globals(node, request: BatchRequest, phase: str):
    """Seed the global RNGs for ``node`` and hold them for the block, unless the node says it
    does not draw from them (``uses_global_random = False``): then it runs unlocked, in
    parallel with other tasks."""
    if not getattr(node, "uses_global_random", True):
        yield
        return
    with _GLOBAL_RNG_LOCK:
        _seed_globals(node, request, phase)
        yield


def prepare_with_global_seed(node, request: BatchRequest):
    """Call a numpy node's ``prepare`` with the global RNGs seeded from the request."""
    with _seeded_globals(node, request, "prepare"):
        return node.prepare(request)


def _output_spec(node, key, request: BatchRequest, inputs: dict[object, Array]) -> ArraySpec:
    if key in inputs:
        spec = inputs[key].spec.copy()
    elif key in node.spec:
        spec = node.spec[key].copy()
    else:
        raise PipelineRequestError(f"{node.name()}: {key} was requested but is not provided")
    requested = request[key]
    if not spec.nonspatial:
        spec.roi = requested.roi
    if key in node.spec and node.spec[key].dtype is not None and (
        key in getattr(node, "updated_items", []) or key in node.provided_items
    ):
        spec.dtype = node.spec[key].dtype
    elif key in inputs:
        spec.dtype = inputs[key].data.dtype
    if spec.dtype is None:
        raise PipelineRequestError(
            f"{node.name()} is a numpy node that provides {key} without a dtype: declare the "
            "dtype in the ArraySpec passed to provides()"
        )
    return spec


def _output_shape(node, key, spec: ArraySpec, inputs: dict[object, Array]) -> tuple[int, ...]:
    if spec.nonspatial:
        if key not in inputs:
            raise PipelineRequestError(
                f"{node.name()} is a numpy node that provides the nonspatial array {key}; its "
                "shape is unknown before the task runs. Make the node lazy (lazy = True) and "
                "return a dask array instead"
            )
        return inputs[key].data.shape
    if spec.voxel_size is None:
        raise PipelineRequestError(f"{node.name()}: {key} has no voxel size in its spec")
    channels = ()
    if key in inputs:
        data = inputs[key].data
        channels = data.shape[: data.ndim - spec.roi.dims]
    return tuple(channels) + tuple(int(s) for s in spec.roi.shape / spec.voxel_size)


def _check_output(node, key, data, shape, dtype) -> np.ndarray:
    data = np.asarray(data)
    if data.shape != shape or data.dtype != dtype:
        raise ArrayError(
            f"{node.name()} returned {key} with shape {data.shape} and dtype {data.dtype}, but "
            f"{shape} and {dtype} were expected from the request and the node's spec"
        )
    return data


def _run_process(node, data: dict, specs: dict, request: BatchRequest, expected: dict,
                 graphs: dict | None = None) -> dict:
    batch = Batch()
    batch.random_seed = request.random_seed
    for key, values in data.items():
        # Tasks may share their inputs (the threaded scheduler does not copy): mutate a copy.
        batch[key] = Array(np.array(values, copy=True), specs[key])
    for key, graph in (graphs or {}).items():
        batch[key] = graph.copy()
    with _seeded_globals(node, request, "process"):
        processed = node.process(batch, request)
    if processed is None:
        processed = batch
    result = batch.merge(processed)
    for key, graph in (graphs or {}).items():
        if key in result.graphs and not _same_graph(result.graphs[key], graph):
            raise ArrayError(
                f"{node.name()} changed the graph {key} in process(), but a numpy node's "
                f"process runs in a dask task, so the change would be lost; declare it in "
                f"setup() with self.updates({key}, spec) (then process runs in the driver)"
            )
    outputs = {}
    for key, (shape, dtype) in expected.items():
        if key not in result.arrays:
            raise ArrayError(f"{node.name()} did not return {key}, which was requested")
        array = result.arrays[key]
        if not array.spec.nonspatial:
            try:
                array = Array(array.data, array.spec).crop(request[key].roi)
            except ArrayError as error:
                raise ArrayError(
                    f"{node.name()} returned {key} with shape {np.shape(array.data)}, which does "
                    f"not fit its spec: {error}"
                ) from None
        outputs[key] = _check_output(node, key, array.data, shape, dtype)
    return outputs


def _run_provide(node, request: BatchRequest, expected: dict) -> dict:
    with _seeded_globals(node, request, "provide"):
        batch = node.provide(request.copy())
    outputs = {}
    for key, (shape, dtype) in expected.items():
        if key not in batch.arrays:
            raise ArrayError(f"{node.name()} did not provide {key}, which was requested")
        outputs[key] = _check_output(node, key, batch.arrays[key].data, shape, dtype)
    return outputs


def _one_block(data):
    """``data`` as one delayed block: cheaper to build than passing the dask array to
    ``delayed`` (which optimizes its whole graph, per call)."""
    if not isinstance(data, da.Array):
        return data
    if data.npartitions > 1:
        data = data.rechunk(data.shape)
    return data.to_delayed(optimize_graph=False).ravel()[0]


def _wrap(node, task, request: BatchRequest, specs: dict, expected: dict) -> Batch:
    batch = Batch()
    batch.random_seed = request.random_seed
    for key, (shape, dtype) in expected.items():
        name = f"{task.key}-{str(key).lower()}"
        data = da.from_delayed(task[key], shape=shape, dtype=dtype, name=name)
        batch[key] = Array(data, specs[key])
    return batch


def _same_graph(a, b) -> bool:
    return a == b and a.spec.roi == b.spec.roi and np.array_equal(
        a.temporary_mask, b.temporary_mask)


def _as_lazy(batch: Batch) -> Batch:
    """``batch`` with its numpy arrays wrapped as (single-chunk) dask arrays."""
    for key, array in list(batch.arrays.items()):
        if not array.is_lazy:
            data = np.asarray(array.data)
            name = f"{str(key).lower()}-{tokenize(data)}"
            batch.arrays[key] = Array(da.from_array(data, chunks=data.shape or -1, name=name),
                                      array.spec, array.attrs)
    return batch


def _provide_in_driver(node, request: BatchRequest) -> Batch:
    """A numpy source asked for graphs: graphs are needed while planning, so ``provide``
    runs now, in the driver (a materialization boundary); its arrays become dask arrays."""
    with _seeded_globals(node, request, "provide"):
        batch = node.provide(request.copy())
    return _as_lazy(batch)


def _process_in_driver(node, batch: Batch, request: BatchRequest) -> Batch:
    """A numpy filter that updates or provides a requested graph: the graph is needed while
    planning downstream, so its inputs are computed and ``process`` runs now, in the driver
    (a materialization boundary)."""
    from .scheduling import current_scheduler

    batch = batch.compute(scheduler=current_scheduler())
    for key, graph in list(batch.graphs.items()):
        batch.graphs[key] = graph.copy()
    with _seeded_globals(node, request, "process"):
        processed = node.process(batch, request)
    return _as_lazy(batch.merge(processed) if processed is not None else batch)


def provide_in_task(node, request: BatchRequest) -> Batch:
    """Build a lazy batch whose arrays come from ``node.provide`` run in one dask task (in
    the driver if graphs are requested: they are needed while planning)."""
    if request.graph_specs:
        return _provide_in_driver(node, request)
    specs, expected = {}, {}
    for key in request.array_specs:
        spec = _output_spec(node, key, request, {})
        specs[key] = spec
        expected[key] = (_output_shape(node, key, spec, {}), spec.dtype)
    name = f"{task_prefix(node.name())}-{tokenize(node.node_id, node.name(), request)}"
    task = dask.delayed(NodeTask(_run_provide, node.name()), pure=True)(
        node, request, expected, dask_key_name=name
    )
    return _wrap(node, task, request, specs, expected)


def process_in_task(node, batch: Batch, request: BatchRequest) -> Batch:
    """Build a lazy batch whose arrays come from ``node.process`` run in one dask task.

    Graphs are passed to the task as copies (the node may read them); a filter that updates
    or provides a requested graph runs in the driver instead (see ``_process_in_driver``).
    """
    changes = set(getattr(node, "updated_items", [])) | set(node.provided_items)
    if any(key in changes for key in request.graph_specs):
        return _process_in_driver(node, batch, request)
    inputs = dict(batch.arrays)
    keys = [k for k in request.array_specs if k in inputs or k in node.provided_items]
    specs, expected = {}, {}
    for key in keys:
        spec = _output_spec(node, key, request, inputs)
        specs[key] = spec
        expected[key] = (_output_shape(node, key, spec, inputs), spec.dtype)
    data = {key: _one_block(array.data) for key, array in inputs.items()}
    in_specs = {key: array.spec for key, array in inputs.items()}
    name = f"{task_prefix(node.name())}-{tokenize(node.node_id, node.name(), request, data)}"
    graphs = dict(batch.graphs) or None
    task = dask.delayed(NodeTask(_run_process, node.name()), pure=True)(
        node, data, in_specs, request, expected, graphs, dask_key_name=name
    )
    return _wrap(node, task, request, specs, expected)
