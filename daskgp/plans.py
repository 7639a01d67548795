"""Per-request plans of spatial nodes: drawn once in ``prepare``, reused in ``process``.

A plan is a pure function of the request, so caching it changes nothing but the cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .errors import BatchRequestError
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


def planned_arrays(node, request: BatchRequest, graphs: bool = False) -> tuple[dict, list]:
    """The spatial array specs of ``request``, and the keys among them that are not
    placeholders (``process`` sees the request without placeholders, so a plan made in
    ``prepare`` must leave them out too). Requested graphs are an error unless the node
    transforms them (``graphs=True``).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> request = BatchRequest()
        >>> request.add(raw, (4, 4))
        >>> specs, keys = planned_arrays(None, request)
        >>> keys
        [RAW]
    """
    for key in [] if graphs else request.graph_specs:
        raise BatchRequestError(
            f"{node.name()}: {key} was requested, but graphs are not supported by "
            f"{node.name()} yet"
        )
    specs = {
        key: spec for key, spec in request.array_specs.items()
        if not spec.nonspatial and spec.roi is not None
    }
    return specs, [key for key, spec in specs.items() if not spec.placeholder]
