"""``NoiseAugment``: random noise (gaussian, poisson, salt & pepper, speckle) on a float array.

skimage's ``random_noise`` semantics, chunk-wise with per-chunk seeded numpy generators.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import BatchError, PipelineSetupError
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest

#: Keyword arguments each mode takes, with skimage's defaults.
MODE_OPTIONS = {
    "gaussian": {"mean": 0.0, "var": 0.01},
    "speckle": {"mean": 0.0, "var": 0.01},
    "poisson": {},
    "salt": {"amount": 0.05},
    "pepper": {"amount": 0.05},
    "s&p": {"amount": 0.05, "salt_vs_pepper": 0.5},
}


class NoiseAugment(BatchFilter):
    """Add random noise to a float array, as ``skimage.util.random_noise`` does.

    gunpowder calls skimage; daskgp implements the same modes without it, lazily: each chunk
    draws its noise from a numpy ``Generator`` seeded by (a seed drawn from the request's
    generator, the chunk's block index), so a batch is identical on every scheduler (for a
    given chunking of the input). The data-dependent parts of skimage's definition are
    global dask reductions: the signed-image test (``min < 0`` makes the low clip value -1),
    and for ``poisson`` the number of unique values and the maximum.

    Modes and their keyword arguments (skimage's defaults): ``"gaussian"`` (``mean=0``,
    ``var=0.01``; additive), ``"speckle"`` (``mean``, ``var``; ``a + a * noise``),
    ``"poisson"`` (none), ``"salt"``/``"pepper"`` (``amount=0.05``), ``"s&p"``
    (``amount``, ``salt_vs_pepper=0.5``). ``"localvar"`` is not supported.

    Args:
        array (ArrayKey): the intensity array to modify (float32 or float64, in [0, 1] or
            [-1, 1]).
        mode (str): the kind of noise, one of the modes above.
        clip (bool): clip the result to [low, 1] (low is -1 for signed data, else 0) and
            require input values in [-1, 1] (checked when the batch is computed).
        p (float): probability of augmenting a batch at all (default 1).
        **kwargs: the mode's options listed above.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.full((100,), 0.5, np.float32))
        >>> pipeline = source + gp.NoiseAugment(raw, mode="s&p", amount=1.0, salt_vs_pepper=1)
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request.add(raw, (100,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     bool((p.request_batch(request)[raw].data == 1).all())
        True
    """

    lazy = True

    def __init__(
        self, array: ArrayKey, mode: str = "gaussian", clip: bool = True, p: float = 1.0, **kwargs
    ) -> None:
        mode = mode.lower()
        if mode not in MODE_OPTIONS:
            raise PipelineSetupError(
                f"NoiseAugment({array}): mode {mode!r} is not supported; choose one of "
                f"{sorted(MODE_OPTIONS)}"
            )
        unknown = set(kwargs) - set(MODE_OPTIONS[mode])
        if unknown:
            raise PipelineSetupError(
                f"NoiseAugment({array}): mode {mode!r} takes {sorted(MODE_OPTIONS[mode])}, "
                f"not {sorted(unknown)}"
            )
        self.array = array
        self.mode = mode
        self.clip = clip
        self.p = p
        self.kwargs = kwargs

    def setup(self) -> None:
        spec = self.upstream_spec(self.array, "add noise to")
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
        seed = int(self.rng(request, "noise").integers(2**63))
        options = {**MODE_OPTIONS[self.mode], **self.kwargs}
        # skimage's signed-image test is a global reduction; skip it where nothing uses it.
        if self.clip or self.mode not in ("gaussian", "speckle"):
            low_clip = da.where(data.min() < 0, -1.0, 0.0)
        else:
            low_clip = 0.0
        if self.mode == "poisson":
            unique_count = da.unique(data).map_blocks(
                _count, drop_axis=0, chunks=(), dtype=np.float64
            )
            old_max = data.max().astype(np.float64)
        else:
            unique_count, old_max = 0.0, 0.0
        range_error = (
            f"{self.name()}: {self.array} (ROI {array.spec.roi}) has values outside [-1, 1]; "
            "use Normalize before, or clip=False"
        )
        name = f"{task_prefix(self.name())}-" + tokenize(
            data.name, self.mode, sorted(options.items()), self.clip, seed
        )
        noisy = da.map_blocks(
            _add_noise, data, low_clip, unique_count, old_max,
            mode=self.mode, options=options, clip=self.clip, seed=seed,
            range_error=range_error, dtype=data.dtype, name=name,
        )
        outputs = Batch()
        outputs[self.array] = Array(noisy, array.spec, array.attrs)
        return outputs

    def _check_dtype(self, dtype, error: type[Exception] = BatchError) -> None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise error(
                f"{self.name()}: {self.array} has dtype {np.dtype(dtype)}; noise augmentation "
                "needs float32 or float64 values in [0, 1] or [-1, 1] (use Normalize before)"
            )


def _count(values: np.ndarray) -> np.ndarray:
    return np.asarray(float(values.size))


def _bernoulli(p: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """skimage's Bernoulli trials: no draws at all for p of 0 or 1."""
    if p == 0:
        return np.zeros(shape, dtype=bool)
    if p == 1:
        return np.ones(shape, dtype=bool)
    return rng.random(shape) <= p


def _add_noise(block, low_clip, unique_count, old_max, mode, options, clip, seed, range_error,
               block_id=None):
    """One chunk of ``skimage.util.random_noise``, with its own seeded generator."""
    if clip and block.size and (block.min() < -1 or block.max() > 1):
        raise BatchError(range_error)
    if not block.size:
        return block
    rng = np.random.default_rng([seed, *block_id])
    low_clip = float(low_clip)
    image = block.astype(np.float64)
    if mode in ("gaussian", "speckle"):
        noise = rng.normal(options["mean"], options["var"] ** 0.5, image.shape)
        out = image + (image * noise if mode == "speckle" else noise)
    elif mode == "poisson":
        vals = 2 ** np.ceil(np.log2(float(unique_count)))
        old_max = float(old_max)
        if low_clip == -1.0:
            image = (image + 1.0) / (old_max + 1.0)
        out = rng.poisson(image * vals) / float(vals)
        if low_clip == -1.0:
            out = out * (old_max + 1.0) - 1.0
    else:
        salt_vs_pepper = {"salt": 1.0, "pepper": 0.0}.get(mode, options.get("salt_vs_pepper"))
        out = image.copy()
        flipped = _bernoulli(options["amount"], image.shape, rng)
        salted = _bernoulli(salt_vs_pepper, image.shape, rng)
        out[flipped & salted] = 1
        out[flipped & ~salted] = low_clip
    if clip:
        np.clip(out, low_clip, 1.0, out=out)
    return out.astype(block.dtype, copy=False)
