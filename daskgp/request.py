"""``BatchRequest``: the ROIs a downstream consumer asks for, and the seed of its randomness."""

from __future__ import annotations

import warnings

from .geometry import Coordinate, Roi
from .keys import ArrayKey, GraphKey
from .seeds import derive_seed
from .specs import ArraySpec, GraphSpec, ProviderSpec

SEED_MODULUS = 2**32


class BatchRequest(ProviderSpec):
    """A request for a batch: a ``ProviderSpec`` plus a random seed.

    ``add()`` centres every ROI on the total ROI, as gunpowder does. The seed makes the batch a
    pure function of (pipeline, request): a request without a seed gets one from the pipeline
    (``build(pipeline, seed=...)``) when it is sent.

    Args:
        array_specs (dict, optional): initial ``{ArrayKey: ArraySpec}``.
        graph_specs (dict, optional): initial ``{GraphKey: GraphSpec}``.
        random_seed (int, optional): seed of every random draw made for this request.

    Example:
        >>> raw, gt = ArrayKey("RAW"), ArrayKey("GT")
        >>> request = BatchRequest(random_seed=42)
        >>> request.add(raw, (84, 268, 268))
        >>> request.add(gt, (56, 56, 56))
        >>> request[gt].roi
        [14:70, 106:162, 106:162] (56, 56, 56)
    """

    def __init__(self, *args, random_seed: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._random_seed = None if random_seed is None else int(random_seed) % SEED_MODULUS

    @property
    def random_seed(self) -> int | None:
        """The seed of this request's random draws (None until the pipeline assigns one)."""
        return self._random_seed

    @random_seed.setter
    def random_seed(self, seed: int | None) -> None:
        seed = None if seed is None else int(seed) % SEED_MODULUS
        if seed != self._random_seed:
            self.__dict__.pop("_sequence", None)
        self._random_seed = seed

    def is_deterministic(self) -> bool:
        """True if this request has a seed of its own (gunpowder's test)."""
        return self._random_seed is not None

    @property
    def sequence(self) -> tuple[int, int] | None:
        """(base seed, index) when this is batch ``index`` of a pipeline's seeded sequence.

        ``PreCache`` uses it to compute the batches that will be asked for next.
        """
        return self.__dict__.get("_sequence")

    def in_sequence(self, base_seed: int, index: int) -> BatchRequest:
        """A copy of this request that is batch ``index`` of the sequence seeded by
        ``base_seed``: its seed is a pure function of the two.

        Example:
            >>> a = BatchRequest().in_sequence(5, 0)
            >>> a.random_seed == BatchRequest().in_sequence(5, 0).random_seed, a.sequence
            (True, (5, 0))
        """
        request = self.copy()
        request._random_seed = derive_seed(base_seed, index)
        request._sequence = (int(base_seed), int(index))
        return request

    def add(
        self,
        key: ArrayKey | GraphKey,
        shape,
        voxel_size=None,
        directed: bool | None = None,
        placeholder: bool = False,
    ) -> None:
        """Request ``key`` with a ROI of ``shape`` (world units), centred on the total ROI."""
        shape = Coordinate(shape)
        if isinstance(key, ArrayKey):
            spec = ArraySpec(roi=Roi((0,) * shape.dims, shape), placeholder=placeholder)
            if voxel_size is not None:
                spec.voxel_size = Coordinate(voxel_size)
        elif isinstance(key, GraphKey):
            spec = GraphSpec(roi=Roi((0,) * shape.dims, shape), directed=directed,
                             placeholder=placeholder)
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be added, got {key!r}")
        self[key] = spec
        self._center_rois()

    def _center_rois(self) -> None:
        total_roi = self.get_total_roi()
        if total_roi is None:
            return
        center = total_roi.center
        for _, spec in self.items():
            if spec.roi is None or getattr(spec, "nonspatial", False):
                continue
            spec.roi = spec.roi.shift(center - spec.roi.center)

    def update_with(self, request: BatchRequest) -> BatchRequest:
        """A copy of this request that also covers everything ``request`` asks for."""
        if not isinstance(request, BatchRequest):
            raise TypeError(f"update_with takes a BatchRequest, got {request!r}")
        merged = self.copy()
        for key, spec in request.items():
            if key not in merged or getattr(merged[key], "nonspatial", False):
                merged[key] = spec
                continue
            mine = merged[key]
            if mine.roi is not None and spec.roi is not None:
                mine.roi = mine.roi.union(spec.roi)
            elif spec.roi is not None:
                mine.roi = spec.roi
            mine.placeholder = mine.placeholder and spec.placeholder
            for field in ("voxel_size", "dtype", "interpolatable", "directed"):
                if getattr(spec, field, None) is not None:
                    setattr(mine, field, getattr(spec, field))
        return merged

    def merge(self, request: BatchRequest) -> BatchRequest:
        """gunpowder's deprecated ``merge``: a copy whose ROIs are the unions with
        ``request``'s (other fields are kept); use ``update_with``, which also takes them."""
        warnings.warn("merge is deprecated! please use update_with as it accounts for spec "
                      "metadata", DeprecationWarning, stacklevel=2)
        if not isinstance(request, BatchRequest):
            raise TypeError(f"merge takes a BatchRequest, got {request!r}")
        merged = self.copy()
        for key, spec in request.items():
            if key not in merged or getattr(merged[key], "nonspatial", False):
                merged[key] = spec
            else:
                merged[key].roi = merged[key].roi.union(spec.roi)
        return merged

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f"\trandom_seed={self._random_seed}\n)"
