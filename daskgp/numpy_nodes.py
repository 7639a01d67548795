"""Run gunpowder-style numpy nodes (``lazy = False``) inside dask tasks, unchanged.

A numpy node's ``provide``/``process`` runs in one task per batch on materialized inputs, with
``random`` and ``numpy.random`` seeded from the request; outputs become dask arrays again.

gunpowder never asks a node for the dtype or the channel axes of what it returns, but a dask
graph needs both. daskgp learns them: the first request that asks a numpy node for a key runs
the node once, in the driver, on computed inputs (a materialization boundary, see
``learned_outputs``), and records each output's leading (channel) shape and dtype. Later
requests build lazy tasks with that contract, and a task whose result disagrees raises an
``ArrayError`` naming the node and the key.
"""

from __future__ import annotations

import contextlib
import contextvars
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
# Learning a node's outputs runs it once; two threads planning at once learn it once.
_LEARN_LOCK = threading.RLock()


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


def skip_with_global_seed(node, request: BatchRequest):
    """Call a numpy node's ``skip_node`` with the global RNGs seeded from the request."""
    with _seeded_globals(node, request, "skip"):
        return node.skip_node(request)


_learning = contextvars.ContextVar("daskgp_numpy_learning", default=True)


@contextlib.contextmanager
def without_learning():
    """Plan numpy nodes whose outputs are not learned yet without running them: their specs'
    dtypes (or their inputs') and their inputs' channel axes are assumed instead, and not
    recorded. For graphs that are planned only to be described (``daskgp precompute``'s
    probe of a finished output), never to be trusted when computed."""
    token = _learning.set(False)
    try:
        yield
    finally:
        _learning.reset(token)


def _assumed(node, specs: dict, inputs: dict) -> dict | None:
    """``{key: (shape, dtype)}`` assumed from specs and inputs, or None where one is unknown."""
    expected = {}
    for key, spec in specs.items():
        dtype = spec.dtype if spec.dtype is not None else (
            inputs[key].data.dtype if key in inputs else None)
        if dtype is None:
            return None
        leading = ()
        if key in inputs:
            leading = _leading_shape(inputs[key].data, inputs[key].spec)
        expected[key] = (_expected_shape(key, spec, leading), np.dtype(dtype))
    return expected


def learned_outputs(node) -> dict:
    """``{key: (leading_shape, dtype)}`` learned from the first batch ``node`` returned.

    ``leading_shape`` holds the axes before the spatial ones (channels), or the whole shape of
    a nonspatial array. Reset when the pipeline is built again.

    Example:
        >>> class Node: pass
        >>> learned_outputs(Node())
        {}
    """
    return node.__dict__.setdefault("_learned_outputs", {})


def _leading_shape(data: np.ndarray, spec: ArraySpec) -> tuple[int, ...]:
    if spec.nonspatial or spec.roi is None:
        return tuple(data.shape)
    return tuple(data.shape[: max(data.ndim - spec.roi.dims, 0)])


def _expected_shape(key, spec: ArraySpec, leading: tuple[int, ...]) -> tuple[int, ...]:
    if spec.nonspatial or spec.roi is None:
        return leading
    if spec.voxel_size is None:
        raise PipelineRequestError(f"{key} has no voxel size in its spec")
    return tuple(leading) + tuple(int(s) for s in spec.roi.shape / spec.voxel_size)


def _output_spec(node, key, request: BatchRequest, upstream_specs: dict) -> ArraySpec:
    """The spec of ``key`` as this node delivers it: the node's own spec for what it provides
    or updates, else upstream's; at the requested ROI."""
    declared = key in node.provided_items or key in getattr(node, "updated_items", [])
    if key in node.spec and (declared or key not in upstream_specs):
        spec = node.spec[key].copy()
    elif key in upstream_specs:
        spec = upstream_specs[key].copy()
    else:
        raise PipelineRequestError(f"{node.name()}: {key} was requested but is not provided")
    if not spec.nonspatial:
        spec.roi = request[key].roi
    return spec


def _as_delivered(node, key, array: Array, roi) -> np.ndarray:
    """``array``'s data at ``roi``; its dtype is the data's (gunpowder nodes assign ``.data``)."""
    data = np.asarray(array.data)
    spec = array.spec.copy()
    spec.dtype = data.dtype
    if spec.nonspatial or roi is None:
        return data
    try:
        return Array(data, spec).crop(roi, copy=False).data
    except ArrayError as error:
        raise ArrayError(
            f"{node.name()} returned {key} with shape {data.shape}, which does not fit its "
            f"spec: {error}"
        ) from None


def _check_output(node, key, data: np.ndarray, shape, dtype) -> np.ndarray:
    if data.shape != tuple(shape) or data.dtype != dtype:
        raise ArrayError(
            f"{node.name()} returned {key} with shape {data.shape} and dtype {data.dtype}, but "
            f"{tuple(shape)} and {np.dtype(dtype)} were expected: the spatial shape from the "
            "request, the channel axes and dtype from the first batch this node returned for "
            f"{key} (daskgp learns them once; a node must keep them from batch to batch)"
        )
    return data


def _run_process(node, data: dict, specs: dict, dependencies, request: BatchRequest,
                 expected: dict | None, graphs: dict | None = None) -> dict:
    """gunpowder's ``BatchFilter.provide`` after the upstream call, on numpy arrays: crop to
    the node's dependencies, ``process``, merge over upstream, crop to the request. The node
    sees copies of ``graphs``; changing one here is an error (it would be lost)."""
    upstream = Batch()
    upstream.random_seed = request.random_seed
    for key, values in data.items():
        upstream[key] = Array(values, specs[key])
    node_batch = Batch()
    node_batch.random_seed = request.random_seed
    for key, array in upstream.arrays.items():
        roi = None
        if dependencies is not None and key in dependencies.array_specs:
            roi = dependencies[key].roi
        if roi is not None and not array.spec.nonspatial:
            array = array.crop(roi, copy=False)
        # Tasks may share their inputs (the threaded scheduler does not copy): mutate a copy.
        node_batch[key] = Array(np.array(array.data, copy=True), array.spec)
    for key, graph in (graphs or {}).items():
        node_batch[key] = graph.copy()
    with _seeded_globals(node, request, "process"):
        processed = node.process(node_batch, request)
    if processed is None:
        processed = node_batch
    result = upstream.merge(processed)
    for key, graph in (graphs or {}).items():
        if key in result.graphs and not _same_graph(result.graphs[key], graph):
            raise ArrayError(
                f"{node.name()} changed the graph {key} in process(), but a numpy node's "
                f"process runs in a dask task, so the change would be lost; declare it in "
                f"setup() with self.updates({key}, spec) (then process runs in the driver)"
            )
    outputs = {}
    keys = expected if expected is not None else _output_keys(node, request, set(data))
    for key in keys:
        if key not in result.arrays:
            raise ArrayError(f"{node.name()} did not return {key}, which was requested")
        outputs[key] = _as_delivered(node, key, result.arrays[key], request[key].roi)
        if expected is not None:
            _check_output(node, key, outputs[key], *expected[key])
    return outputs


def _run_provide(node, request: BatchRequest, expected: dict | None) -> dict:
    with _seeded_globals(node, request, "provide"):
        batch = node.provide(request.copy())
    outputs = {}
    for key in expected if expected is not None else _requested_keys(request):
        if key not in batch.arrays:
            raise ArrayError(f"{node.name()} did not provide {key}, which was requested")
        outputs[key] = np.asarray(batch.arrays[key].data)
        if expected is not None:
            _check_output(node, key, outputs[key], *expected[key])
    return outputs


def _requested_keys(request: BatchRequest) -> list:
    return [k for k, spec in request.array_specs.items() if not spec.placeholder]


def _output_keys(node, request: BatchRequest, inputs: set) -> list:
    return [k for k in request.array_specs if k in inputs or k in node.provided_items]


def _one_block(data):
    """``data`` as one delayed block: cheaper to build than passing the dask array to
    ``delayed`` (which optimizes its whole graph, per call)."""
    if not isinstance(data, da.Array):
        return data
    if data.npartitions > 1:
        data = data.rechunk(data.shape)
    return data.to_delayed(optimize_graph=False).ravel()[0]


def _learn(node, run, inputs: dict, specs: dict, token: str) -> Batch:
    """Run ``run(computed_inputs)`` once in the driver, learn its outputs' leading shapes and
    dtypes, and return them as a batch (a materialization boundary)."""
    from .scheduling import current_scheduler, local_get

    keys = list(inputs)
    values = dask.compute(*(inputs[k] for k in keys), scheduler=local_get(current_scheduler()))
    # Fails as the node's task would: a TaskError naming the node, with the traceback.
    outputs = NodeTask(run, node.name())(dict(zip(keys, values, strict=True)))
    contract = learned_outputs(node)
    batch = Batch()
    for key, data in outputs.items():
        spec = specs[key].copy()
        spec.dtype = data.dtype
        contract[key] = (_leading_shape(data, spec), data.dtype)
        name = f"{task_prefix(node.name())}-learned-{token}-{str(key).lower()}"
        batch[key] = Array(da.from_array(data, chunks=data.shape or -1, name=name), spec)
    return batch


def _expected(node, specs: dict) -> dict | None:
    """``{key: (shape, dtype)}`` from what was learned, or None if a key is not learned yet."""
    contract = learned_outputs(node)
    if any(key not in contract for key in specs):
        return None
    return {key: (_expected_shape(key, spec, contract[key][0]), contract[key][1])
            for key, spec in specs.items()}


def _wrap(task, request: BatchRequest, specs: dict, expected: dict) -> Batch:
    batch = Batch()
    batch.random_seed = request.random_seed
    for key, (shape, dtype) in expected.items():
        name = f"{task.key}-{str(key).lower()}"
        data = da.from_delayed(task[key], shape=shape, dtype=dtype, name=name)
        spec = specs[key].copy()
        spec.dtype = np.dtype(dtype)
        batch[key] = Array(data, spec)
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
    specs = {key: _output_spec(node, key, request, {}) for key in _requested_keys(request)}
    with _LEARN_LOCK:
        expected = _expected(node, specs)
        if expected is None and not _learning.get():
            expected = _assumed(node, specs, {})
        if expected is None:
            batch = _learn(node, lambda _: _run_provide(node, request, None), {}, specs,
                           tokenize(node.node_id, node.name(), request))
            batch.random_seed = request.random_seed
            return batch
    name = f"{task_prefix(node.name())}-{tokenize(node.node_id, node.name(), request)}"
    task = dask.delayed(NodeTask(_run_provide, node.name()), pure=True)(
        node, request, expected, dask_key_name=name
    )
    return _wrap(task, request, specs, expected)


def process_in_task(node, batch: Batch, dependencies: BatchRequest | None,
                    request: BatchRequest) -> Batch:
    """Build a lazy batch whose arrays come from ``node.process`` run in one dask task.

    ``batch`` is what upstream delivered (the union of ``request`` and ``dependencies``); the
    task crops it to ``dependencies`` for the node, as gunpowder does, and returns the
    requested keys the node could have changed, at the requested ROIs.

    Graphs are passed to the task as copies (the node may read them); a filter that updates
    or provides a requested graph runs in the driver instead (see ``_process_in_driver``).
    """
    changes = set(getattr(node, "updated_items", [])) | set(node.provided_items)
    if any(key in changes for key in request.graph_specs):
        return _process_in_driver(node, batch, request)
    if dependencies is None:
        inputs = dict(batch.arrays)
    else:
        inputs = {k: a for k, a in batch.arrays.items() if k in dependencies.array_specs}
    in_specs = {key: array.spec for key, array in inputs.items()}
    keys = _output_keys(node, request, set(inputs))
    specs = {key: _output_spec(node, key, request, in_specs) for key in keys}
    data = {key: _one_block(array.data) for key, array in inputs.items()}
    graphs = dict(batch.graphs) or None
    with _LEARN_LOCK:
        expected = _expected(node, specs)
        if expected is None and not _learning.get():
            expected = _assumed(node, specs, inputs)
        if expected is None:
            result = _learn(
                node, lambda values: _run_process(node, values, in_specs, dependencies,
                                                  request, None, graphs), data, specs,
                tokenize(node.node_id, node.name(), request, data))
            result.random_seed = request.random_seed
            return result
    name = f"{task_prefix(node.name())}-{tokenize(node.node_id, node.name(), request, data)}"
    task = dask.delayed(NodeTask(_run_process, node.name()), pure=True)(
        node, data, in_specs, dependencies, request, expected, graphs, dask_key_name=name
    )
    return _wrap(task, request, specs, expected)
