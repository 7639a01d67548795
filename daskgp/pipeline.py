"""``Pipeline`` (providers chained with ``+``), ``build()`` and ``request_batch``.

Plan and build run in the driver; ``request_batch`` computes the batch once on the scheduler.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator

import numpy as np

from .batch import Batch
from .errors import PipelineSetupError
from .provider import BatchProvider, planning
from .request import BatchRequest
from .scheduling import resolve_scheduler, using_scheduler

logger = logging.getLogger(__name__)


class Pipeline:
    """A DAG of providers; ``output`` is its most downstream node.

    Example:
        >>> pipeline = source + gp.Normalize(raw) + gp.RandomLocation()   # doctest: +SKIP
        >>> with gp.build(pipeline) as p:                                  # doctest: +SKIP
        ...     batch = p.request_batch(request)
    """

    def __init__(self, node: BatchProvider) -> None:
        if not isinstance(node, BatchProvider):
            raise PipelineSetupError(f"a pipeline is made of BatchProviders, got {node!r}")
        self.output = node
        self.children: list[Pipeline] = []
        self.scheduler = None
        self.seed: int | None = None
        self._counter = itertools.count()
        self._batch_ids = itertools.count()
        self._is_setup = False

    @staticmethod
    def to_pipeline(thing) -> Pipeline:
        """``thing`` as a pipeline (a provider is wrapped, a pipeline returned as is)."""
        if isinstance(thing, Pipeline):
            return thing
        if isinstance(thing, BatchProvider):
            return Pipeline(thing)
        raise PipelineSetupError(f"cannot chain {thing!r}: not a BatchProvider or Pipeline")

    def copy(self) -> Pipeline:
        """A copy of the DAG structure (the nodes themselves are shared)."""
        result = Pipeline(self.output)
        result.children = [child.copy() for child in self.children]
        return result

    def traverse(self, callback: Callable[[Pipeline], None], reverse: bool = False) -> None:
        """Call ``callback`` on every node, downstream first (``reverse``: upstream first)."""
        if not reverse:
            callback(self)
        for child in self.children:
            child.traverse(callback, reverse)
        if reverse:
            callback(self)

    def __add__(self, other) -> Pipeline:
        result = Pipeline.to_pipeline(other).copy()
        for leaf in result._leaves():
            leaf.children = [self.copy()]
        return result

    def __radd__(self, other) -> Pipeline:
        if not isinstance(other, tuple):
            raise PipelineSetupError(f"cannot chain {other!r} before a pipeline")
        children = [Pipeline.to_pipeline(c) for c in other]
        result = self.copy()
        for leaf in result._leaves():
            leaf.children = [child.copy() for child in children]
        return result

    def _leaves(self) -> list[Pipeline]:
        leaves: list[Pipeline] = []
        self.traverse(lambda node: leaves.append(node) if not node.children else None)
        return leaves

    def nodes(self) -> Iterator[BatchProvider]:
        """Every node, downstream first."""
        found: list[BatchProvider] = []
        self.traverse(lambda p: found.append(p.output))
        return iter(found)

    # --- lifecycle ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Connect the nodes and call ``setup()`` on each, upstream first."""

        def connect(node: Pipeline) -> None:
            # A node set up before (an earlier build) declares its spec anew.
            for attr in ("_spec", "_provided_items", "_updated_items", "_learned_outputs"):
                node.output.__dict__.pop(attr, None)
            node.output.remove_upstream_providers()
            for child in node.children:
                node.output.add_upstream_provider(child.output)

        self.traverse(connect)
        # A node's seeds depend on its class and how many nodes of that class are upstream of
        # it, so adding a node of another kind (a PreCache, say) changes no other node's draws.
        upstream_first: list[BatchProvider] = []
        self.traverse(lambda node: upstream_first.append(node.output), reverse=True)
        seen: dict[str, int] = {}
        for node in dict.fromkeys(upstream_first):
            node._node_id = seen.get(node.name(), 0)
            seen[node.name()] = node._node_id + 1
        self.traverse(lambda node: node.output.setup(), reverse=True)
        self._is_setup = True

    def teardown(self) -> None:
        """Call ``teardown()`` on each node."""
        self.traverse(lambda node: node.output.teardown(), reverse=True)
        self._is_setup = False

    def internal_teardown(self) -> None:
        """gunpowder's name: each node's ``internal_teardown``, then disconnect the nodes."""
        try:
            self.traverse(lambda node: node.output.internal_teardown(), reverse=True)
            self._is_setup = False
        finally:
            self.traverse(lambda node: node.output.remove_upstream_providers())

    @property
    def spec(self):
        """What the pipeline provides."""
        return self.output.spec

    # --- requests -----------------------------------------------------------------------------

    def _seeded(self, request: BatchRequest) -> BatchRequest:
        if not isinstance(request, BatchRequest):
            raise TypeError(f"request_batch takes a BatchRequest, got {type(request).__name__}")
        if request.random_seed is None:
            return request.in_sequence(self.seed or 0, next(self._counter))
        return request.copy()

    def request_lazy_batch(self, request: BatchRequest) -> Batch:
        """Plan and build the batch for ``request``; return it with dask arrays, uncomputed."""
        if not self._is_setup:
            raise PipelineSetupError(
                "the pipeline is not set up: use `with gp.build(pipeline) as p:`"
            )
        request = self._seeded(request)
        with using_scheduler(self.scheduler), planning():
            batch = self.output.request_batch(request)
        batch.random_seed = request.random_seed
        batch.id = next(self._batch_ids)  # ids count the batches of this build, from 0
        return batch

    def request_batch(self, request: BatchRequest) -> Batch:
        """Plan, build and compute the batch for ``request``: a batch of numpy arrays.

        A materialization boundary: this is where the scheduler runs the graph.
        """
        batch = self.request_lazy_batch(request)
        return batch.compute(scheduler=self.scheduler)

    def __repr__(self) -> str:
        chain = []
        node = self
        while True:
            chain.append(node.output.name())
            if len(node.children) != 1:
                if node.children:
                    chain.append("(" + ", ".join(repr(c) for c in node.children) + ")")
                break
            node = node.children[0]
        return " <- ".join(chain)


@contextlib.contextmanager
def build(pipeline, scheduler=None, client=None, seed: int | None = None):
    """Set up ``pipeline`` for requests; tear it down on exit.

    Args:
        pipeline (Pipeline or BatchProvider): what to build.
        scheduler (str, optional): ``"sync"``, ``"threads"``, ``"processes"`` or a
            ``distributed.Client``; None follows dask's rules (active Client, then
            ``dask.config`` "scheduler", else threads).
        client (distributed.Client, optional): compute on this cluster.
        seed (int, optional): base seed of requests that carry none; by default drawn from
            the OS, and stored as ``p.seed`` so a run can be repeated.

    Example:
        >>> with gp.build(pipeline, scheduler="threads", seed=1) as p:   # doctest: +SKIP
        ...     batch = p.request_batch(request)
    """
    pipeline = Pipeline.to_pipeline(pipeline)
    pipeline.scheduler = resolve_scheduler(scheduler, client)
    pipeline.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
    pipeline._counter = itertools.count()
    pipeline._batch_ids = itertools.count()
    pipeline.setup()
    # gunpowder users call request_batch on what they built, a node or a pipeline.
    pipeline.output._built_pipeline = pipeline
    try:
        yield pipeline
    finally:
        pipeline.output.__dict__.pop("_built_pipeline", None)
        pipeline.teardown()
