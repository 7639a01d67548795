"""Per-request plans of spatial nodes: drawn once in ``prepare``, reused in ``process``.

A plan is a pure function of the request, so caching it changes nothing but the cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .request import BatchRequest


class RequestPlans:
    """The plans of the last ``size`` requests (a few may be in flight at once).

    ``process`` sees the request of ``prepare`` without placeholders, so the key ignores them.

    Example:
        >>> plans = RequestPlans(lambda request: request.random_seed * 2)
        >>> plans.get(BatchRequest(random_seed=21))
        42
    """

    def __init__(self, make_plan: Callable[[BatchRequest], object], size: int = 16) -> None:
        self._make_plan = make_plan
        self._size = size
        self._plans: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(request: BatchRequest) -> tuple:
        """What a plan depends on: the seed and the non-placeholder ROIs."""
        return (request.random_seed, tuple(
            (str(key), str(spec.roi)) for key, spec in request.array_specs.items()
            if not spec.placeholder
        ))

    def get(self, request: BatchRequest):
        """The plan of ``request``, made on first use."""
        key = self.key(request)
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = self._make_plan(request)
                self._plans[key] = plan
                while len(self._plans) > self._size:
                    self._plans.popitem(last=False)
            return plan
