"""``SpecifiedLocation``: centres each batch on one of the given locations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..batch import Batch
from ..errors import PipelineSetupError
from ..locations import LocationFilter
from ..request import BatchRequest


class SpecifiedLocation(LocationFilter):
    """Centre each request on a location from ``locations`` (world units), in order or at
    random, as gunpowder's ``SpecifiedLocation``; locations whose batch would leave the
    upstream ROIs are skipped.

    Differences from gunpowder: in order, batch ``i`` of a pipeline's seeded sequence uses
    location ``i`` (``PreCache`` cannot reorder them); jitter and random choices come from
    the request's seed, not the global RNG; ``extra_data`` is set as the attribute
    ``specified_location_extra_data`` of the requested arrays, as gunpowder does.

    Args:
        locations (list of coordinates): where to centre batches.
        choose_randomly (bool): draw locations at random (with replacement).
        extra_data (list, optional): one item per location, attached to the arrays.
        jitter (tuple of int, optional): shift the centre uniformly by up to this much.
        attempt_factor (int): at random, try at most ``attempt_factor * len(locations)``
            locations (in order: each location once) before raising.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.arange(100))
        >>> pipeline = source + SpecifiedLocation([[20], [70]])
        >>> request = gp.BatchRequest(random_seed=0)
        >>> request.add(raw, (4,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.tolist()
        [18, 19, 20, 21]
    """

    def __init__(self, locations: Sequence, choose_randomly: bool = False, extra_data=None,
                 jitter: Sequence[int] | None = None, attempt_factor: int = 5) -> None:
        if len(locations) == 0:
            raise PipelineSetupError("SpecifiedLocation: no locations given")
        if extra_data is not None and len(extra_data) != len(locations):
            raise PipelineSetupError(
                f"SpecifiedLocation: extra_data ({len(extra_data)}) should match the "
                f"number of locations ({len(locations)})"
            )
        self.coordinates = np.asarray(locations, dtype=np.float64)
        self.choose_randomly = choose_randomly
        self.extra_data = extra_data
        self.jitter = jitter
        self.attempt_factor = attempt_factor
        self.max_attempts = len(locations) * (attempt_factor if choose_randomly else 1)

    def setup(self) -> None:
        super().setup()
        self._count = 0

    def next_location(self, request: BatchRequest, attempt: int) -> np.ndarray:
        rng = self.rng(request, "location", attempt)
        if self.choose_randomly:
            index = int(rng.integers(len(self.coordinates)))
        else:
            if attempt == 0:
                self._start = self.sequence_index(request)
            index = (self._start + attempt) % len(self.coordinates)
        self._index = index
        location = self.coordinates[index].copy()
        if self.jitter is not None:
            location += rng.integers(-np.asarray(self.jitter), np.asarray(self.jitter) + 1)
        return location

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        outputs = super().process(batch, request)
        if self.extra_data is not None:
            for array in outputs.arrays.values():
                array.attrs["specified_location_extra_data"] = self.extra_data[
                    self.picked(request)]
        return outputs
