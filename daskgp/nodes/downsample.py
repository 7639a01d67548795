"""``DownSample``: a new array at a coarser voxel size, by strided slicing (no new values)."""

from __future__ import annotations

import numbers

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate
from ..keys import ArrayKey
from ..provider import BatchFilter
from ..request import BatchRequest


class DownSample(BatchFilter):
    """Downsample ``source`` by integer ``factor`` s into a new array ``target``.

    ``target`` has the ROI of ``source`` and ``factor`` times its voxel size; its voxel at a
    world position is the ``source`` voxel that starts there (``data[::factor]``, as in
    gunpowder: no interpolation, so labels keep their values). The upstream request for
    ``source`` is the requested ROI of ``target``. Lazy: a strided dask slice.

    Args:
        source (ArrayKey): the array to downsample.
        factor (int or tuple of int): the factor, for all spatial axes or per axis.
        target (ArrayKey): the downsampled array to create.

    Example:
        >>> raw, coarse = ArrayKey("RAW"), ArrayKey("COARSE")
        >>> pipeline = gp.ArraySource(raw, np.arange(8)) + gp.DownSample(raw, 2, coarse)
        >>> request = gp.BatchRequest()
        >>> request.add(coarse, (8,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[coarse].data
        array([0, 2, 4, 6])
    """

    lazy = True

    def __init__(self, source: ArrayKey, factor: int | tuple[int, ...],
                 target: ArrayKey) -> None:
        factors = (factor,) if isinstance(factor, numbers.Number) else tuple(factor)
        if not all(isinstance(f, numbers.Integral) and f >= 1 for f in factors):
            raise PipelineSetupError(
                f"{type(self).__name__}: factor={factor} for {target} must be a positive "
                "integer or a tuple of them"
            )
        self.source = source
        self.factor = int(factor) if isinstance(factor, numbers.Number) else Coordinate(factor)
        self.target = target

    def setup(self) -> None:
        spec = self.upstream_spec(self.source, "downsample")
        if spec.voxel_size is None or spec.roi is None:
            raise PipelineSetupError(
                f"{self.name()}: {self.source} needs a ROI and a voxel size to be downsampled"
            )
        spec.voxel_size = spec.voxel_size * self._factors(spec.roi.dims)
        self.provides(self.target, spec)
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest:
        deps = BatchRequest()
        spec = request[self.target].copy()
        spec.voxel_size = None
        deps[self.source] = spec
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        source = batch[self.source]
        dims = source.spec.roi.dims
        channels = (slice(None),) * (source.data.ndim - dims)
        steps = tuple(slice(None, None, f) for f in self._factors(dims))
        spec = self.spec[self.target].copy()
        spec.roi = request[self.target].roi
        outputs = Batch()
        outputs[self.target] = Array(source.data[channels + steps], spec)
        return outputs

    def _factors(self, dims: int) -> Coordinate:
        if isinstance(self.factor, Coordinate):
            if self.factor.dims != dims:
                raise PipelineSetupError(
                    f"{self.name()}: factor {self.factor} for {self.target} has "
                    f"{self.factor.dims} entries, {self.source} has {dims} spatial axes"
                )
            return self.factor
        return Coordinate((self.factor,) * dims)
