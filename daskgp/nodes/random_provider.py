"""``RandomProvider``: relays each request to one upstream provider, drawn from the request's
seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchProvider
from ..request import BatchRequest
from ..specs import ArraySpec


class RandomProvider(BatchProvider):
    """Randomly select one of the upstream providers for each request::

        (a, b, c) + RandomProvider()

    relays each request to ``a``, ``b`` or ``c``. The choice is drawn from a generator
    seeded by the request's seed and this node (never from global RNG state), so a batch is
    a pure function of its request; the chosen provider gets the request with the same seed.
    This node provides the keys that all upstream providers provide, with the specs of the
    first.

    Differences from gunpowder: the choice is seeded (gunpowder uses ``np.random``); the
    ``random_provider_key`` array is int64. Graph keys are relayed like array keys: the
    graph comes from the chosen provider, as its arrays do.

    Args:
        probabilities (list of float, optional): the probability of choosing each upstream
            provider, in the order they were added; they need not sum to 1. Default: equal.
        random_provider_key (ArrayKey, optional): if given, a nonspatial int64 array with the
            index of the provider that served the batch.

    Example:
        >>> raw, choice = ArrayKey("RAW"), ArrayKey("CHOICE")
        >>> sources = tuple(gp.ArraySource(raw, np.full(4, v)) for v in (10, 20))
        >>> pipeline = sources + gp.RandomProvider([0, 1], random_provider_key=choice)
        >>> request = gp.BatchRequest(random_seed=5)
        >>> request.add(raw, (4,))
        >>> request[choice] = ArraySpec(nonspatial=True)
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     batch = p.request_batch(request)
        >>> int(batch[choice].data), batch[raw].data.tolist()
        (1, [20, 20, 20, 20])
    """

    lazy = True

    def __init__(self, probabilities: Sequence[float] | None = None,
                 random_provider_key: ArrayKey | None = None) -> None:
        if probabilities is not None:
            values = np.asarray(probabilities, dtype=np.float64)
            if values.ndim != 1 or (values < 0).any() or not values.sum() > 0:
                raise PipelineSetupError(
                    f"{type(self).__name__}: probabilities {list(probabilities)} must be a "
                    "list of non-negative numbers with a positive sum"
                )
            probabilities = [float(v) / values.sum() for v in values]
        self.probabilities = probabilities
        self.random_provider_key = random_provider_key

    def setup(self) -> None:
        providers = self.get_upstream_providers()
        if not providers:
            raise PipelineSetupError(
                f"{self.name()}: at least one batch provider must be added, as in "
                "(a, b) + RandomProvider()"
            )
        if self.probabilities is not None and len(self.probabilities) != len(providers):
            raise PipelineSetupError(
                f"{self.name()}: {len(self.probabilities)} probabilities for "
                f"{len(providers)} upstream providers; give one per provider"
            )
        # Advertise only what every upstream provider has (graphs are relayed like arrays).
        for key, spec in providers[0].spec.items():
            if all(key in provider.spec for provider in providers[1:]):
                self.provides(key, spec)
        if self.random_provider_key is not None:
            self.provides(self.random_provider_key,
                          ArraySpec(nonspatial=True, dtype=np.int64))

    def provide(self, request: BatchRequest) -> Batch:
        providers = self.get_upstream_providers()
        choice = int(self.rng(request, "choice").choice(len(providers), p=self.probabilities))
        upstream_request = request.copy()
        if self.random_provider_key is not None and self.random_provider_key in request:
            del upstream_request[self.random_provider_key]
        batch = providers[choice].request_batch(upstream_request)
        if self.random_provider_key is not None and self.random_provider_key in request:
            value = np.asarray(choice, dtype=np.int64)
            name = f"{task_prefix(self.name())}-choice-{tokenize(value, self.node_id)}"
            batch[self.random_provider_key] = Array(
                da.from_array(value, chunks=(), name=name),
                ArraySpec(nonspatial=True, dtype=np.int64),
            )
        return batch
