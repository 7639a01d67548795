"""``DefectAugment``: section-wise defects of an intensity array (missing, low-contrast,
artifact-blended and folded sections), drawn per request, built lazily one section at a time.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy.ndimage import binary_dilation, label, map_coordinates

from ..batch import Array, Batch
from ..errors import BatchError, BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..names import NodeTask, task_prefix
from ..pipeline import Pipeline
from ..provider import BatchFilter, BatchProvider
from ..request import BatchRequest
from ..specs import guess_interpolatable

_KINDS = ("missing", "low-contrast", "artifact", "deform")


class DefectAugment(BatchFilter):
    """Augment an intensity array section by section with missing sections, low-contrast
    sections, artifacts blended in from a second source, or deformed (folded) sections.

    Every section along ``axis`` draws one uniform number from the request's seeded
    generator and, with the probabilities in this order, becomes: missing (all 0);
    low-contrast (``mean + (x - mean) * contrast_scale``, with the section's mean); an
    artifact blend (``x * (1 - alpha) + artifact * alpha``, with ``artifacts`` and
    ``artifacts_mask`` requested from ``artifact_source`` for that section, under a seed
    derived from the request); or a fold (the section's content pushed
    ``deformation_strength`` voxels towards a random line across it, which is blacked out
    10 voxels wide, then clipped to [0, 1] as in gunpowder). When a section folds, the
    upstream request grows by ``deformation_strength`` voxels in the other spatial axes.

    Untouched sections are slices of the upstream dask array (merged into whole sections
    when any section changes, so that the pieces concatenate without rechunking); each
    changed section is one task (``defect-augment-<kind>-…``) on that section only, so cost
    follows the batch. Other arrays pass through.

    Differences from gunpowder: any spatial dimensionality works (folds need 3 spatial
    axes); channel axes (leading) are changed alike; the low-contrast mean is taken over the
    requested section (gunpowder's includes the fold margin when another section folds);
    artifacts are requested for the requested section only; integer data is rounded and
    kept in its dtype's range (gunpowder fails or wraps); the fold line is rasterized by
    rounding (gunpowder: skimage's Bresenham line), which can move it by a voxel;
    ``artifacts_mask`` may be any float dtype.

    Args:
        intensities (ArrayKey): the intensity array to modify.
        prob_missing (float): probability that a section is missing (set to 0).
        prob_low_contrast (float): probability that a section has low contrast.
        prob_artifact (float): probability that an artifact is blended into a section.
        prob_deform (float): probability that a section is folded. The four probabilities
            must sum to at most 1.
        contrast_scale (float): factor of the contrast of low-contrast sections.
        artifact_source (BatchProvider or Pipeline, optional): provides ``artifacts`` and
            ``artifacts_mask`` at the voxel size of ``intensities``; set up and torn down
            with this node. Needed when ``prob_artifact > 0``.
        artifacts (ArrayKey, optional): the artifact intensities in ``artifact_source``.
        artifacts_mask (ArrayKey, optional): the float alpha mask in [0, 1] of the artifacts.
        deformation_strength (int): how far (voxels) folded content moves.
        axis (int): the spatial axis along which sections are cut.
        p (float): probability of augmenting a batch at all (default 1).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> data = np.linspace(0.1, 0.9, 5 * 4, dtype=np.float32).reshape(5, 2, 2)
        >>> pipeline = gp.ArraySource(raw, data) + gp.DefectAugment(
        ...     raw, prob_missing=0.3, prob_low_contrast=0.3, contrast_scale=0.5)
        >>> request = gp.BatchRequest(random_seed=7)
        >>> request.add(raw, (5, 2, 2))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data[:, 0].round(3)
        array([[0.1  , 0.142],
               [0.268, 0.311],
               [0.   , 0.   ],
               [0.605, 0.647],
               [0.805, 0.826]], dtype=float32)
    """

    lazy = True

    def __init__(
        self,
        intensities: ArrayKey,
        prob_missing: float = 0.05,
        prob_low_contrast: float = 0.05,
        prob_artifact: float = 0,
        prob_deform: float = 0,
        contrast_scale: float = 0.1,
        artifact_source: BatchProvider | Pipeline | None = None,
        artifacts: ArrayKey | None = None,
        artifacts_mask: ArrayKey | None = None,
        deformation_strength: int = 20,
        axis: int = 0,
        p: float = 1.0,
    ) -> None:
        self.intensities = intensities
        self.probabilities = tuple(
            float(v) for v in (prob_missing, prob_low_contrast, prob_artifact, prob_deform)
        )
        self.contrast_scale = float(contrast_scale)
        self.artifact_source = artifact_source
        self.artifacts = artifacts
        self.artifacts_mask = artifacts_mask
        self.deformation_strength = int(deformation_strength)
        self.axis = int(axis)
        self.p = float(p)
        self._artifact_pipeline = None

    def setup(self) -> None:
        if self.intensities not in self.spec or self.spec[self.intensities].roi is None:
            raise PipelineSetupError(
                f"{self.name()}: {self.intensities} is not provided upstream as a spatial "
                f"array; upstream provides {self.spec.keys()}"
            )
        spec = self.spec[self.intensities]
        dims = spec.roi.dims
        if not 0 <= self.axis < dims:
            raise PipelineSetupError(
                f"{self.name()}: axis={self.axis} is not one of the {dims} spatial axes of "
                f"{self.intensities} (ROI {spec.roi})"
            )
        if min(self.probabilities) < 0 or sum(self.probabilities) > 1 + 1e-9:
            raise PipelineSetupError(
                f"{self.name()}: the probabilities (missing, low contrast, artifact, deform) "
                f"{self.probabilities} must be >= 0 and sum to at most 1"
            )
        if self.probabilities[3] > 0 and (dims != 3 or self.deformation_strength < 0):
            raise PipelineSetupError(
                f"{self.name()}: folds (prob_deform > 0) need 3 spatial axes and "
                f"deformation_strength >= 0; {self.intensities} has ROI {spec.roi}, "
                f"deformation_strength={self.deformation_strength}"
            )
        if self.artifact_source is not None:
            self._artifact_pipeline = Pipeline.to_pipeline(self.artifact_source)
            self._artifact_pipeline.setup()
        if self.probabilities[2] > 0:
            self._check_artifact_source(spec.voxel_size)
        self.enable_autoskip()
        self.updates(self.intensities, spec)

    def teardown(self) -> None:
        if self._artifact_pipeline is not None:
            self._artifact_pipeline.teardown()

    def skip_node(self, request: BatchRequest) -> bool:
        if request[self.intensities].placeholder:  # no data to change
            return True
        return self.rng(request, "skip").random() > self.p

    def prepare(self, request: BatchRequest) -> BatchRequest:
        spec = request[self.intensities].copy()
        growth = self._growth(self._draw(request)[0])
        if growth is not None:
            spec.roi = spec.roi.grow(growth, growth)
            provided = self.spec[self.intensities].roi
            if not provided.contains(spec.roi):
                raise BatchRequestError(
                    f"{self.name()}: {self.intensities}'s requested ROI "
                    f"{request[self.intensities].roi} has a folded section, which needs the "
                    f"upstream ROI {spec.roi}, not inside the provided ROI {provided}; request "
                    "a smaller ROI or add a Pad upstream"
                )
        dependencies = BatchRequest()
        dependencies[self.intensities] = spec
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        # The same draws as in prepare: a pure function of the request, no state kept.
        kinds, folds, artifact_seeds = self._draw(request)
        array = batch[self.intensities]
        roi = request[self.intensities].roi
        growth = self._growth(kinds)
        grown = array.crop(roi.grow(growth, growth)).data if growth is not None else None
        data = array.crop(roi).data
        axis = data.ndim - roi.dims + self.axis
        if any(kinds):
            # Changed sections are one chunk each; untouched ones are cut from whole sections
            # too, so that concatenate needs no rechunking of every piece.
            data = data.rechunk({d: -1 for d in range(data.ndim) if d != axis})
        before = (slice(None),) * axis
        token = task_prefix(self.name())
        pieces, untouched = [], 0
        for section, kind in enumerate(kinds):
            if kind is None:
                continue
            if untouched < section:  # a run of untouched sections: a view
                pieces.append(data[before + (slice(untouched, section),)])
            untouched = section + 1
            original = data[before + (slice(section, section + 1),)]
            # map_blocks names its output ``<token>-<hash of function and inputs>``
            if kind == "missing":
                name = f"{token}-missing-{tokenize(original.chunks, data.dtype)}"
                piece = da.zeros(original.shape, dtype=data.dtype, chunks=original.chunks,
                                 name=name)
            elif kind == "low-contrast":
                piece = da.map_blocks(
                    NodeTask(_low_contrast, self.name()), _one_chunk(original),
                    scale=self.contrast_scale, dtype=data.dtype, token=f"{token}-{kind}",
                )
            elif kind == "artifact":
                piece = self._blend_artifact(original, roi, section, artifact_seeds[section],
                                             array.spec, f"{token}-{kind}")
            else:
                folded = self._fold(grown[before + (section,)], folds[section], data.dtype,
                                    f"{token}-{kind}")
                piece = folded[before + (None,)]
            pieces.append(piece)
        if untouched < len(kinds):
            pieces.append(data[before + (slice(untouched, len(kinds)),)])
        augmented = pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=axis)
        spec = array.spec.copy()
        spec.roi = roi
        outputs = Batch()
        outputs[self.intensities] = Array(augmented, spec, array.attrs)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _draw(self, request: BatchRequest) -> tuple[list, dict, np.ndarray]:
        """Per section: its defect kind (or None), the fold lines, the artifact seeds."""
        roi = request[self.intensities].roi
        shape = roi.shape / self.spec[self.intensities].voxel_size
        sections = shape[self.axis]
        draws = self.rng(request, "sections").random(sections)
        choice = np.searchsorted(np.cumsum(self.probabilities), draws, side="right")
        kinds = [_KINDS[c] if c < len(_KINDS) else None for c in choice]
        folds = {}
        plane = [s + 2 * self.deformation_strength
                 for d, s in enumerate(shape) if d != self.axis]
        fold_rng = self.rng(request, "deform")
        for section in (s for s, kind in enumerate(kinds) if kind == "deform"):
            if min(plane) < 4:
                raise BatchRequestError(
                    f"{self.name()}: {self.intensities}'s requested ROI {roi} is too small "
                    "to fold a section (the grown section needs 4 voxels per axis)"
                )
            fixed_x = bool(fold_rng.random() < 0.5)
            if fixed_x:  # a line from the first to the last row
                line = (0, int(fold_rng.integers(1, plane[1] - 2)),
                        plane[0] - 1, int(fold_rng.integers(1, plane[1] - 2)))
            else:  # a line from the first to the last column
                line = (int(fold_rng.integers(1, plane[0] - 2)), 0,
                        int(fold_rng.integers(1, plane[0] - 2)), plane[1] - 1)
            folds[section] = (fixed_x, line)
        seeds = self.rng(request, "artifacts").integers(2**32, size=sections)
        return kinds, folds, seeds

    def _growth(self, kinds: list) -> Coordinate | None:
        """How much the upstream ROI grows per side, when a section folds (else None)."""
        if "deform" not in kinds:
            return None
        voxel_size = self.spec[self.intensities].voxel_size
        return Coordinate(
            0 if d == self.axis else v * self.deformation_strength
            for d, v in enumerate(voxel_size)
        )

    def _fold(self, section: da.Array, fold: tuple, dtype, token: str) -> da.Array:
        """``section`` (the grown section, without its section axis) folded and cropped."""
        strength = self.deformation_strength
        interpolatable = self.spec[self.intensities].interpolatable
        if interpolatable is None:
            interpolatable = guess_interpolatable(dtype)
        section = _one_chunk(section)
        chunks = section.chunks[:-2] + tuple((n - 2 * strength,) for n in section.shape[-2:])
        fixed_x, line = fold
        return da.map_blocks(
            NodeTask(_fold_section, self.name()), section, fixed_x=fixed_x, line=line,
            strength=strength, order=3 if interpolatable else 0, chunks=chunks, dtype=dtype,
            token=token,
        )

    def _blend_artifact(self, section: da.Array, roi: Roi, index: int, seed: int, spec,
                        token: str) -> da.Array:
        """``section`` (number ``index`` of ``roi``) blended with a fresh artifact."""
        voxel_size = spec.voxel_size
        shape = Coordinate(
            voxel_size[d] if d == self.axis else s for d, s in enumerate(roi.shape)
        )
        artifact_request = BatchRequest(random_seed=int(seed))
        artifact_request.add(self.artifacts, shape, voxel_size=voxel_size)
        artifact_request.add(self.artifacts_mask, shape, voxel_size=voxel_size)
        artifact_batch = self._artifact_pipeline.output.request_batch(artifact_request)
        artifact, alpha = (
            _as_dask(artifact_batch[key].data) for key in (self.artifacts, self.artifacts_mask)
        )
        if not np.issubdtype(alpha.dtype, np.floating):
            mask_roi = artifact_request[self.artifacts_mask].roi
            raise BatchError(
                f"{self.name()}: {self.artifacts_mask} (ROI {mask_roi}) has dtype "
                f"{alpha.dtype}; the alpha mask must be float values in [0, 1]"
            )
        section = _one_chunk(section)
        artifact, alpha = (
            da.broadcast_to(_one_chunk(a), section.shape, chunks=section.chunks)
            for a in (artifact, alpha)
        )
        range_error = (
            f"{self.name()}: {self.artifacts_mask} has values outside [0, 1] in the artifact "
            f"blended into section {index} of {self.intensities} (ROI {roi})"
        )
        return da.map_blocks(
            NodeTask(_blend, self.name()), section, artifact, alpha, range_error=range_error,
            dtype=section.dtype, token=token,
        )

    def _check_artifact_source(self, voxel_size) -> None:
        if self._artifact_pipeline is None or self.artifacts is None or self.artifacts_mask is None:
            raise PipelineSetupError(
                f"{self.name()}: prob_artifact > 0 needs artifact_source, artifacts and "
                "artifacts_mask"
            )
        provided = self._artifact_pipeline.spec
        for key in (self.artifacts, self.artifacts_mask):
            if key not in provided:
                raise PipelineSetupError(
                    f"{self.name()}: artifact_source does not provide {key}; it provides "
                    f"{provided.keys()}"
                )
            if provided[key].voxel_size != voxel_size:
                raise PipelineSetupError(
                    f"{self.name()}: {key} has voxel size {provided[key].voxel_size} in "
                    f"artifact_source, but {self.intensities} has {voxel_size}; they must match"
                )
        dtype = provided[self.artifacts_mask].dtype
        if dtype is not None and not np.issubdtype(dtype, np.floating):
            raise PipelineSetupError(
                f"{self.name()}: {self.artifacts_mask} has dtype {dtype}; the alpha mask must "
                "be float values in [0, 1]"
            )


def _as_dask(data) -> da.Array:
    return data if isinstance(data, da.Array) else da.from_array(data, chunks=-1, name=False)


def _one_chunk(data: da.Array) -> da.Array:
    return data if data.npartitions == 1 else data.rechunk(data.shape)


def _cast_like(values: np.ndarray, dtype) -> np.ndarray:
    """``values`` in ``dtype``; integers are rounded and kept in the dtype's range."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype, copy=False)


def _low_contrast(section: np.ndarray, scale: float) -> np.ndarray:
    """``mean + (section - mean) * scale``, in the section's own precision for floats."""
    mean = section.mean(dtype=np.float64) if section.size else 0.0
    if np.issubdtype(section.dtype, np.floating):
        mean, scale = section.dtype.type(mean), section.dtype.type(scale)
    result = (section - mean) * scale + mean
    return _cast_like(result, section.dtype)


def _blend(section: np.ndarray, artifact: np.ndarray, alpha: np.ndarray,
           range_error: str) -> np.ndarray:
    """``section * (1 - alpha) + artifact * alpha``."""
    if alpha.size and (alpha.min() < 0 or alpha.max() > 1):
        raise BatchError(range_error)
    return _cast_like(section * (1 - alpha) + artifact * alpha, section.dtype)


def fold_field(shape: tuple[int, int], fixed_x: bool, line: tuple[int, int, int, int],
               strength: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gunpowder's fold of one section: per voxel, the (row, column) it samples, and the
    blacked-out band around the line from ``line[:2]`` to ``line[2:]`` (row, column).

    Voxels on either side of the line sample ``strength`` voxels away along the line's
    normal, in opposite directions; the band is the line dilated 10 times.

    Example:
        >>> rows, cols, band = fold_field((30, 30), True, (0, 10, 29, 10), 3)
        >>> float(cols[5, 0] - 0), float(cols[5, 29] - 29), bool(band[5, 10]), bool(band[5, 25])
        (-3.0, 3.0, True, False)
    """
    x0, y0, x1, y1 = line
    count = max(abs(x1 - x0), abs(y1 - y0)) + 1
    on_line = np.zeros(shape, dtype=bool)
    on_line[np.rint(np.linspace(x0, x1, count)).astype(int),
            np.rint(np.linspace(y0, y1, count)).astype(int)] = True
    direction = np.array([x1 - x0, y1 - y0], dtype=np.float64)
    direction /= np.linalg.norm(direction)
    normal = np.array([-direction[1], direction[0]])
    components, count = label(~on_line)
    assert count == 2, f"a fold line must cut the section in two, got {count} parts"
    negative = components[0, 0] if fixed_x else components[-1, -1]
    positive = components[-1, -1] if fixed_x else components[0, 0]
    side = (components == positive).astype(np.float64) - (components == negative)
    rows = np.arange(shape[0])[:, None] + side * strength * normal[0]
    cols = np.arange(shape[1])[None, :] + side * strength * normal[1]
    return rows, cols, binary_dilation(on_line, iterations=10)


def _fold_section(section: np.ndarray, fixed_x: bool, line: tuple, strength: int,
                  order: int) -> np.ndarray:
    """Fold each 2D plane of ``section`` (channels first), then crop ``strength`` per side."""
    plane_shape = section.shape[-2:]
    rows, cols, band = fold_field(plane_shape, fixed_x, line, strength)
    crop = tuple(slice(strength, n - strength) for n in plane_shape)
    coordinates = np.stack([rows[crop], cols[crop]])
    band = band[crop]
    out = np.empty(section.shape[:-2] + band.shape, dtype=section.dtype)
    if np.issubdtype(section.dtype, np.floating):
        low, high = 0.0, 1.0  # gunpowder's clip: intensities are in [0, 1]
    else:
        low, high = np.iinfo(section.dtype).min, np.iinfo(section.dtype).max
    for index in np.ndindex(section.shape[:-2]):
        warped = map_coordinates(section[index].astype(np.float64), coordinates,
                                 order=order, mode="constant")
        warped = np.clip(warped, low, high)
        warped[band] = 0
        out[index] = _cast_like(warped, section.dtype)
    return out


__all__ = ["DefectAugment", "fold_field"]
