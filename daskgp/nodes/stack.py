"""``Stack``: several independent batches in one graph, stacked along a new leading axis."""

from __future__ import annotations

import dask.array as da

from ..batch import Array, Batch
from ..provider import BatchFilter
from ..request import BatchRequest
from ..seeds import derive_seed


class Stack(BatchFilter):
    """Request ``num_repetitions`` batches upstream and stack each array along a new axis 0.

    The repetitions are independent sub-requests of one graph, so the scheduler computes them
    in parallel. Repetition ``r`` is seeded with ``f(request seed, r)``: deterministic, and
    different from every other repetition. Requested graphs are those of the first
    repetition, as in gunpowder (graphs have no batch axis).

    Args:
        num_repetitions (int): how many batches to stack.

    Example:
        >>> stack = Stack(4)   # a batch of 4 samples for a network with a batch axis
    """

    lazy = True

    def __init__(self, num_repetitions: int) -> None:
        if num_repetitions < 1:
            raise ValueError(f"Stack: num_repetitions must be >= 1, got {num_repetitions}")
        self.num_repetitions = num_repetitions

    def provide(self, request: BatchRequest) -> Batch:
        upstream = self.get_upstream_provider()
        batches = []
        for repetition in range(self.num_repetitions):
            sub_request = request.copy()
            sub_request.random_seed = derive_seed(request.random_seed or 0, "stack", repetition)
            batches.append(upstream.request_batch(sub_request))
        stacked = Batch()
        for key in request.array_specs:
            arrays = [batch[key] for batch in batches]
            spec = arrays[0].spec.copy()
            stacked[key] = Array(da.stack([a.data for a in arrays], axis=0), spec)
        for key in request.graph_specs:
            stacked[key] = batches[0][key]  # as gunpowder: the first repetition's graph
        return stacked
