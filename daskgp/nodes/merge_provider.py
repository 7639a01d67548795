"""``MergeProvider``: joins several upstream providers that provide different keys."""

from __future__ import annotations

from ..batch import Batch
from ..errors import PipelineSetupError
from ..provider import BatchProvider
from ..request import BatchRequest


class MergeProvider(BatchProvider):
    """Provide the union of the keys of all upstream providers, each from the one that has it.

    Used as ``(source_a, source_b) + MergeProvider()``. A key provided by two upstream
    providers is an error.

    Example:
        >>> pipeline = (raw_source, labels_source) + MergeProvider()   # doctest: +SKIP
    """

    lazy = True

    def setup(self) -> None:
        self._owner = {}
        for provider in self.get_upstream_providers():
            for key, spec in provider.spec.items():
                if key in self._owner:
                    raise PipelineSetupError(
                        f"{self.name()}: {key} is provided by both {self._owner[key].name()} "
                        f"and {provider.name()}"
                    )
                self._owner[key] = provider
                self.provides(key, spec)

    def provide(self, request: BatchRequest) -> Batch:
        batch = Batch()
        for provider in self.get_upstream_providers():
            sub_request = BatchRequest(random_seed=request.random_seed)
            for key, spec in request.items():
                if self._owner[key] is provider:
                    sub_request[key] = spec
            if len(sub_request):
                batch = batch.merge(provider.request_batch(sub_request))
        return batch
