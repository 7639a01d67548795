"""``Crop``: restricts the ROI provided for an array (or graph); the data is not touched.

Only the spec changes: requests outside the cropped ROI are rejected downstream of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..provider import BatchFilter


class Crop(BatchFilter):
    """Limit the ROI provided for ``key`` to ``roi``, or cut fractions off its faces.

    Nothing happens to the data: requests pass through, and downstream nodes (for instance
    ``RandomLocation``) only see the smaller ROI.

    Differences from gunpowder: ``fraction_negative`` cuts the negative (lower) end and
    ``fraction_positive`` the positive (upper) end, as documented there (gunpowder's code
    applies them the other way round); fractional cuts are rounded down to whole voxels, so
    the cropped ROI stays on the voxel grid.

    Args:
        key (ArrayKey or GraphKey): the key whose provided ROI is restricted.
        roi (Roi, optional): the new ROI; it must lie inside the upstream ROI.
        fraction_negative (tuple of float, optional): per dimension, the fraction of the
            upstream ROI to cut from its negative end.
        fraction_positive (tuple of float, optional): per dimension, the fraction to cut
            from its positive end.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> pipeline = gp.ArraySource(raw, np.zeros((10, 10))) + gp.Crop(
        ...     raw, fraction_negative=(0.2, 0), fraction_positive=(0, 0.5))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.spec[raw].roi
        [2:10, 0:5] (8, 5)
    """

    lazy = True

    def __init__(
        self,
        key: ArrayKey,
        roi: Roi | None = None,
        fraction_negative: Sequence[float] | None = None,
        fraction_positive: Sequence[float] | None = None,
    ) -> None:
        fractions = (fraction_negative, fraction_positive)
        if roi is not None and fractions != (None, None):
            raise PipelineSetupError(
                f"{type(self).__name__}: for {key}, 'roi' and 'fraction_...' cannot be given "
                "together"
            )
        if roi is None and fractions == (None, None):
            raise PipelineSetupError(
                f"{type(self).__name__}: for {key}, give either 'roi' or 'fraction_...'"
            )
        if fraction_negative is not None and fraction_positive is None:
            fraction_positive = (0.0,) * len(fraction_negative)
        if fraction_positive is not None and fraction_negative is None:
            fraction_negative = (0.0,) * len(fraction_positive)
        self.key = key
        self.roi = roi
        self.fraction_negative = fraction_negative
        self.fraction_positive = fraction_positive

    def setup(self) -> None:
        spec = self.upstream_spec(self.key, "crop")
        if spec.roi is None:
            raise PipelineSetupError(
                f"{self.name()}: asked to crop {self.key}, which has no ROI upstream ({spec})"
            )
        if self.roi is not None:
            if not spec.roi.contains(self.roi):
                raise PipelineSetupError(
                    f"{self.name()}: crop ROI {self.roi} of {self.key} is not contained in the "
                    f"upstream ROI {spec.roi}"
                )
            spec.roi = self.roi
        else:
            spec.roi = self._fraction_roi(spec.roi, spec.voxel_size)
        self.updates(self.key, spec)

    def _fraction_roi(self, roi: Roi, voxel_size: Coordinate | None) -> Roi:
        dims = roi.dims
        if len(self.fraction_negative) != dims or len(self.fraction_positive) != dims:
            raise PipelineSetupError(
                f"{self.name()}: crop fractions {self.fraction_negative}, "
                f"{self.fraction_positive} of {self.key} need one entry per dimension of its "
                f"ROI {roi}"
            )
        if roi.unbounded:
            raise PipelineSetupError(
                f"{self.name()}: cannot crop fractions of the unbounded ROI {roi} of {self.key}"
            )
        if any(n + p >= 1 for n, p in zip(self.fraction_negative, self.fraction_positive,
                                          strict=True)):
            raise PipelineSetupError(
                f"{self.name()}: crop fractions {self.fraction_negative} + "
                f"{self.fraction_positive} of {self.key} reach 1 in some dimension"
            )
        step = voxel_size if voxel_size is not None else Coordinate((1,) * dims)
        voxels = roi.shape / step
        negative = Coordinate(math.floor(v * f) for v, f in zip(voxels, self.fraction_negative,
                                                                strict=True))
        positive = Coordinate(math.floor(v * f) for v, f in zip(voxels, self.fraction_positive,
                                                                strict=True))
        return roi.grow(-negative * step, -positive * step)
