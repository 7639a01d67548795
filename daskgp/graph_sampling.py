"""Choosing locations by graph content: points to centre a request on, nonempty checks.

Shared by ``RandomLocation(ensure_nonempty=...)`` and ``Reject(ensure_nonempty=...)``.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import PipelineRequestError, PipelineSetupError
from .geometry import Coordinate, Roi
from .graph import roi_mask
from .keys import GraphKey
from .request import BatchRequest
from .specs import GraphSpec

__all__ = ["PointSampler", "describe_source", "graph_is_nonempty", "point_shift_range",
           "upstream_points"]


def describe_source(provider, key) -> str:
    """The node upstream of ``provider`` that provides ``key``, with its file if it has one
    (``"CsvPointsSource('points.csv')"``), for error messages."""
    stack, found = [provider], provider
    while stack:  # the most upstream provider of the key is its source
        node = stack.pop()
        if key in node.__dict__.get("_provided_items", []):
            found = node
        stack.extend(node.__dict__.get("upstream_providers", []))
    filename = getattr(found, "filename", None)
    return f"{found.name()}({filename!r})" if filename else found.name()


def upstream_points(node, key: GraphKey) -> np.ndarray:
    """All node locations of ``key`` in the ROI ``node``'s upstream provider offers, fetched
    once (at setup) through the pipeline; raises ``PipelineSetupError`` naming the key and
    its source if the ROI is unbounded or holds no point."""
    upstream = node.get_upstream_provider()
    if key not in upstream.spec:
        raise PipelineSetupError(
            f"{node.name()}: ensure_nonempty={key} is not provided upstream; upstream "
            f"provides {upstream.spec.keys()}"
        )
    roi = upstream.spec[key].roi
    if roi is None or roi.unbounded:
        raise PipelineSetupError(
            f"{node.name()}: ensure_nonempty={key} needs a bounded ROI upstream, it has {roi} "
            f"(from {describe_source(upstream, key)})"
        )
    request = BatchRequest(random_seed=0)
    request[key] = GraphSpec(roi=roi)
    graph = upstream.request_batch(request)[key]
    locations = graph.locations[roi_mask(roi, graph.locations)]
    if len(locations) == 0:
        raise PipelineSetupError(
            f"{node.name()}: ensure_nonempty={key}, but {key} has no point in its provided "
            f"ROI {roi} (from {describe_source(upstream, key)})"
        )
    return locations


class PointSampler:
    """Draws points, optionally balanced by density, as gunpowder's ``RandomLocation``.

    With ``point_balance_radius > 1`` a point's probability is inversely proportional to the
    number of points within that distance (world units) of it, so dense clusters are not
    oversampled. Each draw costs O(log N).

    Args:
        locations (numpy.ndarray): ``(N, dims)`` world coordinates.
        point_balance_radius (float): the radius; <= 1 draws uniformly.

    Example:
        >>> sampler = PointSampler(np.array([[0.0], [0.1], [10.0]]), point_balance_radius=5)
        >>> sampler.probabilities.round(2).tolist()
        [0.25, 0.25, 0.5]
    """

    def __init__(self, locations: np.ndarray, point_balance_radius: float = 1) -> None:
        self.locations = np.asarray(locations, dtype=np.float64)
        if point_balance_radius > 1:
            from scipy.spatial import cKDTree

            tree = cKDTree(self.locations)
            counts = tree.query_ball_point(self.locations, point_balance_radius,
                                           return_length=True)
            weights = 1.0 / np.asarray(counts, dtype=np.float64)
        else:
            weights = np.ones(len(self.locations))
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)

    def choose(self, rng: np.random.Generator) -> np.ndarray:
        """One point, drawn with ``rng``."""
        index = int(np.searchsorted(self._cumulative, rng.random() * self._cumulative[-1],
                                    side="right"))
        return self.locations[min(index, len(self.locations) - 1)]


def point_shift_range(point: np.ndarray, roi: Roi, step: Coordinate, lowest, highest,
                      centered: bool = False) -> list[tuple[int, int]] | None:
    """Per axis, the (inclusive) range of shifts ``k * step`` with ``lowest <= k <= highest``
    that put ``point`` inside ``roi + k * step`` (``begin <= point < end``); with
    ``centered``, the single shift that brings ``point`` nearest the centre of ``roi``. None
    if there is none.

    Example:
        >>> point_shift_range(np.array([10.0]), Roi((0,), (4,)), Coordinate(1), [0], [100])
        [(7, 10)]
    """
    ranges = []
    for d in range(roi.dims):
        low = math.floor((point[d] - roi.end[d]) / step[d]) + 1
        high = math.floor((point[d] - roi.begin[d]) / step[d])
        if centered:
            k = round((point[d] - (roi.begin[d] + roi.end[d]) / 2) / step[d])
            low = high = min(max(k, low), high)
        low, high = max(low, lowest[d]), min(high, highest[d])
        if low > high:
            return None
        ranges.append((low, high))
    return ranges


def graph_is_nonempty(batch, key: GraphKey, roi: Roi | None = None) -> bool:
    """Whether the graph ``key`` of ``batch`` has a node (in ``roi``, default: its ROI);
    ``Reject(ensure_nonempty=key)`` accepts a batch with this test."""
    if key not in batch.graphs:
        raise PipelineRequestError(f"ensure_nonempty: {key} is not in the batch")
    graph = batch.graphs[key]
    return bool(roi_mask(graph.spec.roi if roi is None else roi, graph.locations).any())
