"""``BatchProvider`` and ``BatchFilter``: the nodes of a pipeline, with gunpowder's contract.

Requests flow upstream through ``prepare`` (plan); lazy arrays flow downstream through
``process`` (build). Nothing here computes: ``Pipeline.request_batch`` does, once.
"""

from __future__ import annotations

import copy
import logging

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
)
from .keys import ArrayKey
from .profiling import timed
from .request import BatchRequest
from .seeds import make_rng
from .specs import ArraySpec, ProviderSpec

logger = logging.getLogger(__name__)


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
    #: Drop placeholder keys before asking ``provide``.
    remove_placeholders: bool = False
    #: Numpy nodes only: the node may draw from ``random``/``numpy.random``. daskgp then seeds
    #: them from the request and runs the node's calls one at a time per process (global state
    #: is shared by threads). Set False on numpy nodes that draw nothing, so their tasks run in
    #: parallel on the threads scheduler.
    uses_global_random: bool = True

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
        """Plan and build a (lazy) batch for ``request``, checking gunpowder's contract."""
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
            self.remove_unneeded(batch, request)
        except DaskgpError:
            raise
        except Exception as error:
            raise PipelineRequestError(
                f"{self.name()} failed on request:\n{request}\n{type(error).__name__}: {error}"
            ) from error
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
            expected_dtype = request_spec.dtype or (provided.dtype if provided else None)
            if expected_dtype is not None and array.data.dtype != expected_dtype:
                raise BatchError(
                    f"{self.name()}: {key} was expected as {np.dtype(expected_dtype)}, "
                    f"but the batch has {array.data.dtype}"
                )

    def remove_unneeded(self, batch: Batch, request: BatchRequest) -> None:
        """Drop arrays from ``batch`` that ``request`` did not ask for."""
        for key in [k for k in batch.arrays if k not in request]:
            del batch[key]

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

    def skip_node(self, request: BatchRequest) -> bool:
        """Override to skip this node for ``request`` (e.g. with probability ``1 - p``)."""
        return False

    def _can_skip(self, request: BatchRequest) -> bool:
        if self.__dict__.get("_autoskip_enabled", False):
            touched = set(self.updated_items) | set(self.provided_items)
            if not any(key in request for key in touched):
                return True
        return self.skip_node(request)

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
        for key in self.provided_items:
            if key in upstream_request:
                del upstream_request[key]
        upstream_request.random_seed = request.random_seed

        batch = self.get_upstream_provider().request_batch(upstream_request)
        if skip:
            return batch

        if dependencies is not None:
            dependencies.remove_placeholders()
            node_batch = batch.crop(dependencies)
        else:
            node_batch = batch
        downstream_request.remove_placeholders()
        with timed(self.name(), "process"):
            if self.lazy:
                if not self.accepts_numpy:
                    node_batch = _as_dask(node_batch)
                processed = self.process(node_batch, downstream_request)
            else:
                from .numpy_nodes import process_in_task

                processed = process_in_task(self, node_batch, downstream_request)
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
