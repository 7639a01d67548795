"""``BatchProvider`` and ``BatchFilter``: the nodes of a pipeline, with gunpowder's contract.

Requests flow upstream through ``prepare`` (plan); lazy arrays flow downstream through
``process`` (build). Nothing here computes: ``Pipeline.request_batch`` does, once.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import random
import traceback

import dask.array as da
import numpy as np

from .batch import Array, Batch
from .draws import note_draw
from .errors import (
    BatchError,
    BatchRequestError,
    DaskgpError,
    PipelineRequestError,
    PipelineSetupError,
    shorten,
)
from .keys import ArrayKey
from .profiling import timed
from .request import BatchRequest
from .seeds import make_rng
from .specs import ArraySpec, ProviderSpec

logger = logging.getLogger(__name__)

#: True while a pipeline plans a batch (a node's request_batch is then one step of the plan).
_planning = contextvars.ContextVar("daskgp_planning", default=False)


@contextlib.contextmanager
def planning():
    """Mark the block as planning: nodes' ``request_batch`` calls are steps of one plan."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


class BatchProvider:
    """A node that provides batches: a source, or (as ``BatchFilter``) a transformation.

    Subclasses implement ``setup()`` (declare what they provide with ``self.provides``) and
    ``provide(request)``. Nodes that build dask graphs set ``lazy = True``; nodes that keep the
    default ``lazy = False`` are gunpowder-style numpy nodes, which daskgp runs inside one dask
    task per batch on materialized data (see ``daskgp.numpy_nodes``).

    Example:
        >>> class Ones(BatchProvider):
        ...     def setup(self):
        ...         self.provides(ArrayKey("ONES"), ArraySpec(roi=Roi((0,), (10,)), voxel_size=(1,),
        ...                                                    dtype=np.float32))
        ...     def provide(self, request):
        ...         batch = Batch()
        ...         for key, spec in request.array_specs.items():
        ...             batch[key] = Array(np.ones(spec.roi.shape, np.float32), spec)
        ...         return batch
    """

    #: True for nodes whose ``provide``/``process`` return dask arrays (a lazy graph).
    lazy: bool = False
    #: gunpowder's default: providers get requests without placeholders, filters with them.
    _removes_placeholders_by_default: bool = True
    #: Numpy nodes only: the node may draw from ``random``/``numpy.random``. daskgp then seeds
    #: them from the request and runs the node's calls one at a time per process (global state
    #: is shared by threads). Set False on numpy nodes that draw nothing, so their tasks run in
    #: parallel on the threads scheduler.
    uses_global_random: bool = True

    @property
    def remove_placeholders(self) -> bool:
        """Drop placeholder keys before asking ``provide`` (see ``enable_placeholders``)."""
        return self.__dict__.get("_remove_placeholders", self._removes_placeholders_by_default)

    def enable_placeholders(self) -> None:
        """Let placeholder keys reach ``provide`` (gunpowder's switch; call in ``setup``)."""
        self._remove_placeholders = False

    # --- wiring -------------------------------------------------------------------------------

    def add_upstream_provider(self, provider: BatchProvider) -> BatchProvider:
        """Connect ``provider`` upstream of this node."""
        self.get_upstream_providers().append(provider)
        return provider

    def get_upstream_providers(self) -> list[BatchProvider]:
        """The providers directly upstream of this node."""
        if "upstream_providers" not in self.__dict__:
            self.upstream_providers = []
        return self.upstream_providers

    def remove_upstream_providers(self) -> None:
        """Disconnect every upstream provider."""
        self.upstream_providers = []

    def __add__(self, other):
        from .pipeline import Pipeline

        return Pipeline(self) + other

    def __radd__(self, other):
        from .pipeline import Pipeline

        return other + Pipeline(self)

    def __getstate__(self) -> dict:
        # A node travels to workers without the rest of the pipeline behind it.
        state = dict(self.__dict__)
        state.pop("upstream_providers", None)
        state.pop("_built_pipeline", None)
        return state

    # --- spec ---------------------------------------------------------------------------------

    @property
    def spec(self) -> ProviderSpec:
        """What this node provides (set up by ``setup``)."""
        self._init_spec()
        return self._spec

    def _init_spec(self) -> None:
        if "_spec" not in self.__dict__ or self._spec is None:
            self._spec = ProviderSpec()

    @property
    def provided_items(self) -> list:
        """Keys this node adds to the spec."""
        if "_provided_items" not in self.__dict__:
            self._provided_items = []
        return self._provided_items

    def provides(self, key, spec: ArraySpec) -> None:
        """Declare that this node provides ``key`` with ``spec``."""
        if key in self.spec:
            raise BatchRequestError(f"{self.name()}: {key} is already provided upstream")
        self.spec[key] = copy.deepcopy(spec)
        self.provided_items.append(key)

    # --- lifecycle ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Declare what this node provides; called once, upstream nodes first."""

    def teardown(self) -> None:
        """Release resources; called once when the pipeline is torn down."""

    def internal_teardown(self) -> None:
        """Forget the spec declared in ``setup`` and call ``teardown`` (gunpowder's hook)."""
        for attr in ("_spec", "_provided_items", "_updated_items", "_learned_outputs"):
            self.__dict__.pop(attr, None)
        self.teardown()

    def remove_provided(self, request: BatchRequest) -> None:
        """Delete from ``request`` the keys this node provides (it makes them itself)."""
        for key in self.provided_items:
            if key in request:
                del request[key]

    def set_seeds(self, request: BatchRequest) -> None:
        """Seed ``random`` and ``numpy.random`` with ``request.random_seed``, as gunpowder
        does before every node. daskgp's own nodes do not need it (their generators are
        seeded per node, see ``rng``); numpy nodes are seeded per node by daskgp itself."""
        random.seed(request.random_seed)
        np.random.seed(request.random_seed)

    def name(self) -> str:
        """The node's name in errors and task keys."""
        return type(self).__name__

    @property
    def node_id(self) -> int:
        """How many nodes of this class are upstream of this one; part of every seed it draws."""
        return self.__dict__.get("_node_id", 0)

    def rng(self, request: BatchRequest, *purpose) -> np.random.Generator:
        """A generator seeded by (request seed, this node, ``purpose``): no global state."""
        note_draw(self.name())
        return make_rng(request.random_seed or 0, self.node_id, self.name(), *purpose)

    # --- plan + build -------------------------------------------------------------------------

    def request_batch(self, request: BatchRequest) -> Batch:
        """Plan and build a (lazy) batch for ``request``, checking gunpowder's contract.

        Called by a user on the node that ``gp.build(node)`` built (gunpowder's
        ``with gp.build(source): source.request_batch(request)``), it is the pipeline's
        ``request_batch``: seeded, computed, numpy.
        """
        built = self.__dict__.get("_built_pipeline")
        if built is not None and not _planning.get():
            return built.request_batch(request)
        batch = None
        try:
            self.check_request_consistency(request)
            upstream_request = request.copy()
            if self.remove_placeholders:
                upstream_request.remove_placeholders()
            batch = self._provide(upstream_request)
            request = request.copy()
            request.remove_placeholders()
            self.check_batch_consistency(batch, request)
            self.check_graph_consistency(batch, request)
            self.remove_unneeded(batch, request)
        except DaskgpError:
            raise
        except Exception as error:
            wrapped = PipelineRequestError(
                f"{self.name()} failed on request:\n{request}\n{type(error).__name__}: "
                f"{shorten(error)}"
            )
            wrapped.provider, wrapped.request, wrapped.batch = self, request, batch
            wrapped.original_traceback = traceback.format_exception(error)
            raise wrapped from error
        return batch

    def _provide(self, request: BatchRequest) -> Batch:
        with timed(self.name(), "provide"):
            if self.lazy:
                return self.provide(request)
            from .numpy_nodes import provide_in_task

            return provide_in_task(self, request)

    def provide(self, request: BatchRequest) -> Batch:
        """Return a batch with exactly the requested ROIs (sources implement this)."""
        raise NotImplementedError(f"{self.name()} does not implement provide()")

    def check_request_consistency(self, request: BatchRequest) -> None:
        """Raise ``BatchRequestError`` unless this node can provide ``request``."""
        for key, request_spec in request.items():
            if key not in self.spec:
                raise BatchRequestError(
                    f"{self.name()}: asked for {key}, which this node does not provide; "
                    f"it provides {self.spec.keys()}"
                )
            provided = self.spec[key]
            request_roi = request_spec.roi
            if isinstance(key, ArrayKey) and provided.nonspatial:
                continue
            if provided.roi is not None and request_roi is not None:
                if not provided.roi.contains(request_roi):
                    raise BatchRequestError(
                        f"{self.name()}: {key}'s requested ROI {request_roi} is outside the "
                        f"provided ROI {provided.roi}"
                    )
            if not isinstance(key, ArrayKey):
                if request_spec.directed is not None and provided.directed is not None and (
                        request_spec.directed != provided.directed):
                    raise BatchRequestError(
                        f"{self.name()}: {key} requested with directed="
                        f"{request_spec.directed}, but provided with directed={provided.directed}"
                    )
                continue
            voxel_size = provided.voxel_size
            if request_spec.voxel_size is not None and voxel_size != request_spec.voxel_size:
                raise BatchRequestError(
                    f"{self.name()}: {key} requested at voxel size {request_spec.voxel_size}, "
                    f"but provided at {voxel_size}"
                )
            if request_roi is not None and voxel_size is not None:
                if not request_roi.shape.is_multiple_of(voxel_size):
                    raise BatchRequestError(
                        f"{self.name()}: {key}'s requested ROI {request_roi} has a shape that is "
                        f"not a multiple of the voxel size {voxel_size}"
                    )
                origin = provided.roi.begin if provided.roi is not None else None
                shift = request_roi.begin
                if origin is not None and None not in origin:
                    shift = request_roi.begin - origin
                if None not in shift and not shift.is_multiple_of(voxel_size):
                    raise BatchRequestError(
                        f"{self.name()}: {key}'s requested ROI {request_roi} is not aligned to "
                        f"the voxel grid (voxel size {voxel_size}, provided ROI {provided.roi})"
                    )
            if request_spec.dtype is not None and provided.dtype not in (None, request_spec.dtype):
                raise BatchRequestError(
                    f"{self.name()}: {key} requested as {request_spec.dtype}, "
                    f"provided as {provided.dtype}"
                )

    def check_batch_consistency(self, batch: Batch, request: BatchRequest) -> None:
        """Raise ``BatchError`` unless ``batch`` holds exactly the requested ROIs and dtypes."""
        for key, request_spec in request.array_specs.items():
            if key not in batch.arrays:
                raise BatchError(f"{self.name()}: {key} was requested but not provided")
            array = batch.arrays[key]
            provided = self.spec[key] if key in self.spec else None
            if not array.spec.nonspatial and array.spec.roi != request_spec.roi:
                raise BatchError(
                    f"{self.name()}: {key} was requested with ROI {request_spec.roi}, "
                    f"but the batch has ROI {array.spec.roi}"
                )
            if provided is not None and provided.voxel_size is not None:
                if array.spec.voxel_size != provided.voxel_size:
                    raise BatchError(
                        f"{self.name()}: {key} has voxel size {array.spec.voxel_size} in the "
                        f"batch, but the node provides {provided.voxel_size}"
                    )
            # gunpowder checks only the requested dtype; daskgp also holds its own (lazy) nodes
            # to the dtype they declare. Numpy nodes' dtypes are learned (numpy_nodes).
            declared = provided.dtype if provided is not None and self.lazy else None
            if isinstance(self, BatchFilter) and key not in (
                    set(self.provided_items) | set(self.updated_items)):
                declared = None
            expected_dtype = request_spec.dtype or declared
            if expected_dtype is not None and array.data.dtype != expected_dtype:
                raise BatchError(
                    f"{self.name()}: {key} was expected as {np.dtype(expected_dtype)}, "
                    f"but the batch has {array.data.dtype}"
                )

    def remove_unneeded(self, batch: Batch, request: BatchRequest) -> None:
        """Drop arrays and graphs from ``batch`` that ``request`` did not ask for."""
        for key in [k for k in batch.arrays if k not in request]:
            del batch[key]
        for key in [k for k in batch.graphs if k not in request]:
            del batch[key]

    def check_graph_consistency(self, batch: Batch, request: BatchRequest) -> None:
        """Raise ``BatchError`` unless ``batch`` has every requested graph with the requested
        ROI and directedness, and no node outside that ROI except dangling ones (outside, on
        an edge to a node inside)."""
        from .graph import roi_mask

        for key, request_spec in request.graph_specs.items():
            if key not in batch.graphs:
                raise BatchError(f"{self.name()}: {key} was requested but not provided")
            graph = batch.graphs[key]
            if graph.spec.roi != request_spec.roi:
                raise BatchError(
                    f"{self.name()}: {key} was requested with ROI {request_spec.roi}, "
                    f"but the batch has ROI {graph.spec.roi}"
                )
            if request_spec.directed is not None and graph.directed != request_spec.directed:
                raise BatchError(
                    f"{self.name()}: {key} was requested with directed={request_spec.directed},"
                    f" but the batch has directed={graph.directed}"
                )
            inside = roi_mask(graph.spec.roi, graph.locations)
            if not inside.all():
                inside_ids = graph.ids[inside]
                edges = graph.edge_array
                dangling = np.isin(graph.ids, edges[np.isin(edges, inside_ids).any(axis=1)])
                stray = ~inside & ~dangling
                if stray.any():
                    raise BatchError(
                        f"{self.name()}: {key} has nodes {graph.ids[stray][:5].tolist()} at "
                        f"{graph.locations[stray][:5].tolist()}, outside its ROI "
                        f"{graph.spec.roi} and not on an edge to a node inside"
                    )

    def __repr__(self) -> str:
        return self.name()


class BatchFilter(BatchProvider):
    """A node with one upstream provider that changes requests and batches passing through.

    Implement ``setup`` (optional: the upstream spec is copied; use ``updates``/``provides``),
    ``prepare(request)`` (return the ``BatchRequest`` of what it needs upstream, or None to
    pass the request on) and ``process(batch, request)``. Lazy filters (``lazy = True``) work
    on dask arrays; the default numpy filters mutate numpy arrays inside one dask task.

    Example:
        >>> class Invert(BatchFilter):
        ...     def __init__(self, key):
        ...         self.key = key
        ...     def process(self, batch, request):
        ...         batch[self.key].data = 1 - batch[self.key].data
    """

    #: Lazy filters get dask arrays even downstream of a materialization boundary, unless they
    #: handle numpy arrays themselves (``Snapshot``, ``Train``).
    accepts_numpy: bool = False
    _removes_placeholders_by_default = False

    def get_upstream_provider(self) -> BatchProvider:
        """The one provider upstream of this filter."""
        providers = self.get_upstream_providers()
        if len(providers) != 1:
            raise BatchRequestError(
                f"{self.name()} is a BatchFilter and needs exactly one upstream provider, "
                f"it has {len(providers)}"
            )
        return providers[0]

    def _init_spec(self) -> None:
        if "_spec" not in self.__dict__ or self._spec is None:
            self._spec = copy.deepcopy(self.get_upstream_provider().spec)

    @property
    def updated_items(self) -> list:
        """Keys whose spec this filter changes."""
        if "_updated_items" not in self.__dict__:
            self._updated_items = []
        return self._updated_items

    def upstream_spec(self, key, action: str) -> ArraySpec:
        """A copy of the spec upstream provides for ``key``; a ``PipelineSetupError`` naming
        this node, what it was asked to do (``action``) and what upstream provides, if none."""
        if key not in self.spec:
            raise PipelineSetupError(
                f"{self.name()}: asked to {action} {key}, which is not provided upstream; "
                f"upstream provides {self.spec.keys()}"
            )
        return self.spec[key].copy()

    def updates(self, key, spec: ArraySpec) -> None:
        """Declare that this filter changes the spec of ``key`` (provided upstream)."""
        if key not in self.spec:
            raise BatchRequestError(
                f"{self.name()}: cannot update {key}, which is not provided upstream"
            )
        self.spec[key] = copy.deepcopy(spec)
        self.updated_items.append(key)

    def enable_autoskip(self, skip: bool = True) -> None:
        """Skip this filter for requests that contain none of its updated or provided keys."""
        self._autoskip_enabled = skip

    @property
    def autoskip_enabled(self) -> bool:
        """Whether ``enable_autoskip`` was called."""
        return self.__dict__.get("_autoskip_enabled", False)

    def skip_node(self, request: BatchRequest) -> bool:
        """Override to skip this node for ``request`` (e.g. with probability ``1 - p``).

        A skipped node passes the request upstream unchanged (minus what it provides) and the
        batch downstream untouched: neither ``prepare`` nor ``process`` runs. Numpy nodes'
        ``skip_node`` runs with the global RNGs seeded from the request, like ``prepare``.
        """
        return False

    def _can_skip(self, request: BatchRequest) -> bool:
        if self.autoskip_enabled:
            # gunpowder's rule: run if any non-placeholder key is provided or updated here.
            touched = set(self.updated_items) | set(self.provided_items)
            if not any(key in touched for key, spec in request.items()
                       if not spec.placeholder):
                return True
        if self.lazy:
            return bool(self.skip_node(request))
        from .numpy_nodes import skip_with_global_seed

        return bool(skip_with_global_seed(self, request))

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        """Return what this filter needs upstream for ``request`` (None: the request as is)."""
        return None

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        """Transform ``batch`` (cropped to what ``prepare`` asked for) towards ``request``."""
        return None

    def _provide(self, request: BatchRequest) -> Batch:
        # A filter plans in the driver; only its process() may run in a task (see provide).
        return self.provide(request)

    def _prepare(self, request: BatchRequest):
        if self.lazy:
            return self.prepare(request)
        from .numpy_nodes import prepare_with_global_seed

        return prepare_with_global_seed(self, request)

    def provide(self, request: BatchRequest) -> Batch:
        downstream_request = request.copy()
        skip = self._can_skip(request)
        dependencies = None
        if skip:
            upstream_request = request.copy()
        else:
            with timed(self.name(), "prepare"):
                dependencies = self._prepare(request)
            if isinstance(dependencies, BatchRequest):
                upstream_request = request.update_with(dependencies)
            elif dependencies is None:
                upstream_request = request.copy()
            else:
                raise BatchRequestError(
                    f"{self.name()}.prepare() returned {type(dependencies).__name__}; it must "
                    "return a BatchRequest or None"
                )
        self.remove_provided(upstream_request)
        upstream_request.random_seed = request.random_seed

        batch = self.get_upstream_provider().request_batch(upstream_request)
        if skip:
            return batch

        if dependencies is not None:
            dependencies.remove_placeholders()
        downstream_request.remove_placeholders()
        with timed(self.name(), "process"):
            if self.lazy:
                node_batch = batch if dependencies is None else batch.crop(dependencies)
                if not self.accepts_numpy:
                    node_batch = _as_dask(node_batch)
                processed = self.process(node_batch, downstream_request)
            else:
                from .numpy_nodes import process_in_task

                # gunpowder's crop to the dependencies happens inside the node's task.
                node_batch = batch
                processed = process_in_task(self, batch, dependencies, downstream_request)
        if processed is None:
            processed = node_batch
        return batch.merge(processed).crop(downstream_request)


def _as_dask(batch: Batch) -> Batch:
    """``batch`` with numpy arrays (from a materialization boundary upstream) wrapped as dask."""
    if all(array.is_lazy for array in batch.arrays.values()):
        return batch
    arrays = {
        key: array if array.is_lazy else Array(
            da.from_array(array.data, chunks=array.data.shape or -1, name=False), array.spec,
            array.attrs)
        for key, array in batch.arrays.items()
    }
    return batch._with_arrays(arrays)
