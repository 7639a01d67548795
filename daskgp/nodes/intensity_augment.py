"""``IntensityAugment``: random contrast (scale) and brightness (shift) of an intensity array.

Lazy elementwise dask ops; the mean is a dask reduction (or taken in the task of a one-block
array), the parameters are seeded draws. Right after a warp's one-chunk output (ElasticAugment,
DeformAugment, through SimpleAugment's views) it runs in place inside the warp's task.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import BatchError, PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..transforms import ScaleShift, sectioned_mean, warp_rebuild
from ..transforms._kernels import scale_shift


class IntensityAugment(BatchFilter):
    """Randomly scale and shift the values of a float intensity array in [0, 1].

    Values change as in gunpowder, ``a = a.mean() + (a - a.mean()) * scale + shift``, with
    ``scale`` and ``shift`` drawn uniformly from the request's seeded generator, the mean taken
    over the whole array (or each slab), then clipped to [0, 1] when ``clip``. With ``clip``,
    values outside [0, 1] are an error (raised when the batch is computed, as gunpowder checks
    them). Everything is lazy: the mean is a dask reduction, the rest one elementwise
    ``map_blocks`` (tasks ``intensity-augment-…``); a one-block array or slab takes its mean
    in that same task. Directly after a warp's one-chunk output (a batch-sized
    ``ElasticAugment`` or ``DeformAugment`` output, also through ``SimpleAugment``), the whole
    augmentation runs in place at the end of the warp's task instead (``ScaleShift``): the
    same bits, without a second full-size array.

    Args:
        array (ArrayKey): the intensity array to modify (float32 or float64).
        scale_min (float): smallest scale (contrast factor).
        scale_max (float): largest scale.
        shift_min (float): smallest shift (added brightness).
        shift_max (float): largest shift.
        z_section_wise (bool): draw scale and shift, and take the mean, for each section along
            the first spatial axis; same as ``slab=(1, -1, ...)`` on spatial data.
            Deprecated in gunpowder in favour of ``slab`` (passing it warns, as there).
            ``z_section_wise=False`` with a ``slab`` is accepted (gunpowder asserts that any
            ``z_section_wise`` excludes ``slab``); ``True`` with a ``slab`` is refused.
        clip (bool): clip the result to [0, 1] and require input values in [0, 1].
        p (float): probability of augmenting a batch at all (default 1).
        slab (tuple of int, optional): augment independently in slabs of this shape, over all
            axes of the data (channels included); -1 means the full extent of that axis.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.array([0.2, 0.4, 0.6], np.float32))
        >>> pipeline = source + gp.IntensityAugment(raw, 2, 2, 0.1, 0.1)
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request.add(raw, (3,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.round(3)
        array([0.1, 0.5, 0.9], dtype=float32)
    """

    lazy = True

    def __init__(
        self,
        array: ArrayKey,
        scale_min: float,
        scale_max: float,
        shift_min: float,
        shift_max: float,
        z_section_wise: bool | None = None,
        clip: bool = True,
        p: float = 1.0,
        slab: Sequence[int] | None = None,
    ) -> None:
        if z_section_wise and slab is not None:
            raise PipelineSetupError(
                f"IntensityAugment({array}): z_section_wise and slab are mutually exclusive"
            )
        if z_section_wise is not None:
            warnings.warn(
                "IntensityAugment: z_section_wise is deprecated in gunpowder; use slab instead",
                DeprecationWarning,
                stacklevel=2,
            )
        self.array = array
        self.scale_min = scale_min
        self.scale_max = scale_max
        self.shift_min = shift_min
        self.shift_max = shift_max
        self.z_section_wise = z_section_wise
        self.clip = clip
        self.p = p
        self.slab = None if slab is None else tuple(slab)

    def setup(self) -> None:
        spec = self.upstream_spec(self.array, "augment")
        if spec.dtype is not None:
            self._check_dtype(spec.dtype, PipelineSetupError)
        self.enable_autoskip()
        self.updates(self.array, spec)

    def skip_node(self, request: BatchRequest) -> bool:
        return self.rng(request, "skip").random() > self.p

    def prepare(self, request: BatchRequest) -> BatchRequest:
        dependencies = BatchRequest()
        dependencies[self.array] = request[self.array].copy()
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        array = batch[self.array]
        data = array.data
        self._check_dtype(data.dtype)
        spatial_dims = data.ndim if array.spec.roi is None else array.spec.roi.dims
        slab = self._slab_shape(data.shape, spatial_dims)
        grid = tuple(-(-n // s) for n, s in zip(data.shape, slab, strict=True))
        # Drawn here rather than in prepare: the slab grid needs the channel count, known
        # only from the data; the draw is the same seeded, pure function of the request.
        rng = self.rng(request, "scale-shift")
        scales = rng.uniform(self.scale_min, self.scale_max, size=grid)
        shifts = rng.uniform(self.shift_min, self.shift_max, size=grid)
        range_error = (
            f"{self.name()}: {self.array} (ROI {array.spec.roi}) has values outside [0, 1]; "
            "use Normalize before, or clip=False"
        )
        name = f"{task_prefix(self.name())}-" + tokenize(
            data.name, slab, scales, shifts, self.clip
        )
        rebuild = warp_rebuild(data)
        if all(g == 1 for g in grid) and data.npartitions == 1 and rebuild is not None:
            # A warp's one-chunk output (or SimpleAugment's view of one): scaled and shifted
            # in place in the warp's own task, the same arithmetic and bits as below.
            augmented = rebuild(ScaleShift(float(scales.flat[0]), float(shifts.flat[0]),
                                           bool(self.clip), range_error))
        elif all(g == 1 for g in grid) and data.npartitions > 1:
            augmented = da.map_blocks(
                _scale_shift, data, data.mean(dtype=np.float64),
                scale=float(scales.flat[0]), shift=float(shifts.flat[0]), clip=self.clip,
                range_error=range_error, dtype=data.dtype, name=name,
                meta=np.empty((0,) * data.ndim, dtype=data.dtype),
            )
        else:
            # One task per slab (its mean taken in the task), as for a one-block array.
            chunks = tuple(
                (s,) * (n // s) + ((n % s,) if n % s else ())
                for n, s in zip(data.shape, slab, strict=True)
            )
            augmented = da.map_blocks(
                _scale_shift_slab, data.rechunk(chunks), scales=scales, shifts=shifts,
                clip=self.clip, range_error=range_error, dtype=data.dtype, name=name,
                meta=np.empty((0,) * data.ndim, dtype=data.dtype),
            )
        outputs = Batch()
        outputs[self.array] = Array(augmented, array.spec, array.attrs)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _check_dtype(self, dtype, error: type[Exception] = BatchError) -> None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise error(
                f"{self.name()}: {self.array} has dtype {np.dtype(dtype)}; intensity "
                "augmentation needs float32 or float64 values in [0, 1] (use Normalize before)"
            )

    def _slab_shape(self, shape: tuple[int, ...], spatial_dims: int) -> tuple[int, ...]:
        if self.z_section_wise:
            slab = [-1] * len(shape)
            slab[len(shape) - spatial_dims] = 1
        elif self.slab is not None:
            slab = list(self.slab)
            if len(slab) != len(shape):
                raise BatchError(
                    f"{self.name()}: slab={self.slab} has {len(slab)} entries, but {self.array} "
                    f"has {len(shape)} axes (shape {shape})"
                )
        else:
            slab = [-1] * len(shape)
        return tuple(n if s == -1 else int(s) for n, s in zip(shape, slab, strict=True))


def _memory_order(block: np.ndarray):
    """``block`` as a view in memory order (SimpleAugment's mirrors and transposes undone),
    C-contiguous where the block is a mirrored or transposed contiguous array, and the
    ``(inverse, flips)`` that turn a result of that view's shape back into ``block``'s
    orientation (None where ``block`` is not such a view: then a contiguous copy)."""
    flips = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in block.strides)
    values = block[flips]
    order = tuple(int(a) for a in np.argsort(values.strides, kind="stable")[::-1])
    values = values.transpose(order)
    if not values.flags.c_contiguous:
        return np.ascontiguousarray(block), None
    return values, (tuple(int(a) for a in np.argsort(order)), flips)


def _scale_shift(block, mean, scale, shift, clip, range_error, values=None):
    """``mean + (block - mean) * scale + shift``, clipped to [0, 1] when ``clip``
    (``values``: ``_memory_order(block)`` if already taken)."""
    # In the data's own precision, as gunpowder computes it (no float64 temporaries), in one
    # compiled pass: the numpy expression's bits, without its five temporaries.
    mean, scale, shift = (block.dtype.type(v) for v in (mean, scale, shift))
    # Elementwise: a mirrored or transposed block (SimpleAugment's views) is computed in
    # memory order and mirrored and transposed back, instead of being copied first.
    values, restore = _memory_order(block) if values is None else values
    result = np.empty(values.shape, dtype=block.dtype)
    if not scale_shift(values, mean, scale, shift, bool(clip), result):
        raise BatchError(range_error)
    return result if restore is None else result.transpose(restore[0])[restore[1]]


def _scale_shift_slab(block, scales, shifts, clip, range_error, block_id=None):
    """One slab per block: its own mean, scale and shift."""
    # The mean in memory order too: a sum over a strided view costs twice as much.
    values = _memory_order(block)
    mean = sectioned_mean(values[0])
    return _scale_shift(block, mean, scales[block_id], shifts[block_id], clip, range_error,
                        values)
