"""``UpSample``: a new array at a finer voxel size, by repeating voxels (no new values)."""

from __future__ import annotations

import numbers

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate
from ..keys import ArrayKey
from ..provider import BatchFilter
from ..request import BatchRequest
from ..specs import ArraySpec


class UpSample(BatchFilter):
    """Upsample ``source`` by integer ``factor`` s into a new array ``target``.

    ``target`` has the ROI of ``source`` and its voxel size divided by ``factor`` (which must
    divide it). As in gunpowder, the requested ROI of ``target`` is grown to the voxel grid
    of ``source`` on its way upstream, each voxel is repeated ``factor`` times along each
    axis (labels keep their values), and the result is cropped to the request. Lazy:
    ``da.repeat`` and a slice.

    Args:
        source (ArrayKey): the array to upsample.
        factor (int, tuple or Coordinate): the factor, for all spatial axes or per axis.
        target (ArrayKey): the upsampled array to create.

    Example:
        >>> raw, fine = ArrayKey("RAW"), ArrayKey("FINE")
        >>> source = gp.ArraySource(raw, np.arange(3), ArraySpec(voxel_size=(2,)))
        >>> request = gp.BatchRequest()
        >>> request[fine] = ArraySpec(roi=Roi((1,), (4,)))
        >>> with gp.build(source + gp.UpSample(raw, 2, fine), scheduler="sync") as p:
        ...     p.request_batch(request)[fine].data
        array([0, 1, 1, 2])
    """

    lazy = True

    def __init__(self, source: ArrayKey, factor: int | tuple[int, ...] | Coordinate,
                 target: ArrayKey) -> None:
        factors = (factor,) if isinstance(factor, numbers.Number) else tuple(factor)
        if not all(isinstance(f, numbers.Integral) and f >= 1 for f in factors):
            raise PipelineSetupError(
                f"{type(self).__name__}: factor={factor} for {target} must be a positive "
                "integer or a Coordinate of them"
            )
        self.source = source
        self.factor = int(factor) if isinstance(factor, numbers.Number) else Coordinate(factor)
        self.target = target

    def setup(self) -> None:
        spec = self.upstream_spec(self.source, "upsample")
        if spec.voxel_size is None or spec.roi is None:
            raise PipelineSetupError(
                f"{self.name()}: {self.source} needs a ROI and a voxel size to be upsampled"
            )
        if not isinstance(self.factor, Coordinate):
            self.factor = Coordinate((self.factor,) * spec.roi.dims)
        if self.factor.dims != spec.roi.dims or not spec.voxel_size.is_multiple_of(self.factor):
            raise PipelineSetupError(
                f"{self.name()}: the voxel size {spec.voxel_size} of {self.source} is not a "
                f"multiple of the factor {self.factor}, so {self.target} would not have "
                "integer voxels"
            )
        spec.voxel_size = spec.voxel_size / self.factor
        self.provides(self.target, spec)
        self.enable_autoskip()

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.target not in request:
            return None
        voxel_size = self.get_upstream_provider().spec[self.source].voxel_size
        deps = BatchRequest()
        deps[self.source] = ArraySpec(roi=request[self.target].roi.snap_to_grid(voxel_size,
                                                                                mode="grow"))
        return deps

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.target not in request:
            return None
        source = batch[self.source]
        data = source.data
        for d, f in enumerate(self.factor):
            if f > 1:
                data = data.repeat(f, axis=data.ndim - self.factor.dims + d)
        spec = self.spec[self.target].copy()
        spec.roi = source.spec.roi
        outputs = Batch()
        outputs[self.target] = Array(data, spec).crop(request[self.target].roi)
        return outputs
