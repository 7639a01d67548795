"""Voxel size and offset of a stored array, from its attributes.

Two conventions: gunpowder's ``resolution``/``offset`` attributes on the dataset (world units,
one value per spatial axis), and OME-NGFF ``multiscales`` (0.4 in the group's attributes, 0.5
under ``attrs["ome"]``), whose ``scale``/``translation`` transforms are read for the spatial axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..geometry import Coordinate

#: OME-NGFF axis types that are not spatial.
NONSPATIAL_AXIS_TYPES = ("channel", "time")


class MetadataError(ValueError):
    """Attributes that cannot be turned into a voxel size or offset (sources name the file)."""


@dataclass(frozen=True)
class SpatialMetadata:
    """What attributes say about an array's world geometry; None where they say nothing.

    Attributes:
        voxel_size (Coordinate or None): world units per voxel, per spatial axis.
        offset (Coordinate or None): world position of the first voxel, per spatial axis.
        spatial_axes (tuple of bool or None): per storage axis, whether it is spatial (known
            from OME-NGFF ``axes`` only).
    """

    voxel_size: Coordinate | None = None
    offset: Coordinate | None = None
    spatial_axes: tuple[bool, ...] | None = None


def integer_coordinate(values: Sequence[Any], what: str) -> Coordinate:
    """``values`` as a ``Coordinate`` of ints; raises ``MetadataError`` for non-integer values.

    Example:
        >>> integer_coordinate([4.0, 2, 2], "resolution")
        (4, 2, 2)
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise MetadataError(f"{what} must be a list of numbers, got {values!r}")
    result = []
    for value in values:
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
            raise MetadataError(
                f"{what} {list(values)} is not integer: daskgp works in integer world units; "
                "give the voxel size (and ROI) in array_specs instead"
            )
        result.append(int(value))
    return Coordinate(result)


def gunpowder_metadata(attrs: Mapping[str, Any]) -> SpatialMetadata:
    """Voxel size and offset from gunpowder's ``resolution`` and ``offset`` attributes.

    Example:
        >>> gunpowder_metadata({"resolution": [4, 2, 2], "offset": [40, 20, 20]}).offset
        (40, 20, 20)
    """
    voxel_size = attrs.get("resolution")
    offset = attrs.get("offset")
    return SpatialMetadata(
        voxel_size=None if voxel_size is None else integer_coordinate(voxel_size, "resolution"),
        offset=None if offset is None else integer_coordinate(offset, "offset"),
    )


def _multiscales(group_attrs: Mapping[str, Any]) -> list[Mapping]:
    ome = group_attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:  # OME-NGFF 0.5
        multiscales = ome["multiscales"]
    else:  # OME-NGFF 0.4 and earlier
        multiscales = group_attrs.get("multiscales", [])
    # Anything else (e.g. a JSON string in an HDF5 attribute) is not OME-NGFF metadata.
    if not isinstance(multiscales, list):
        return []
    return [entry for entry in multiscales if isinstance(entry, Mapping)]


def _axis_is_spatial(axis: Any) -> bool:
    if isinstance(axis, str):  # OME-NGFF 0.3: axes are names
        return axis not in ("c", "t")
    return axis.get("type") not in NONSPATIAL_AXIS_TYPES


def _compose(transforms: Sequence[Mapping], ndim: int) -> tuple[list, list]:
    """Scale and translation of a list of OME-NGFF transforms, applied in order."""
    scale, translation = [1.0] * ndim, [0.0] * ndim
    for transform in transforms or ():
        kind = transform.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation") or kind not in transform:
            raise MetadataError(f"unsupported OME-NGFF coordinate transformation {transform!r}")
        values = list(transform[kind])
        if len(values) != ndim:
            raise MetadataError(
                f"OME-NGFF {kind} {values} has {len(values)} values for {ndim} axes"
            )
        if kind == "scale":
            scale = [s * v for s, v in zip(scale, values, strict=True)]
            translation = [t * v for t, v in zip(translation, values, strict=True)]
        else:
            translation = [t + v for t, v in zip(translation, values, strict=True)]
    return scale, translation


def ome_ngff_metadata(group_attrs: Mapping[str, Any], leaf: str, ndim: int) -> SpatialMetadata:
    """Voxel size and offset of dataset ``leaf`` from its group's OME-NGFF ``multiscales``.

    The dataset's own transforms come first, then the multiscale's shared ones. Axes of type
    ``channel`` or ``time`` are not spatial. Returns an empty ``SpatialMetadata`` when the group
    has no multiscale that lists ``leaf``.

    Example:
        >>> attrs = {"multiscales": [{"axes": [{"name": "c", "type": "channel"},
        ...     {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        ...     "datasets": [{"path": "s0", "coordinateTransformations": [
        ...         {"type": "scale", "scale": [1, 4, 2]},
        ...         {"type": "translation", "translation": [0, 40, 20]}]}]}]}
        >>> metadata = ome_ngff_metadata(attrs, "s0", 3)
        >>> metadata.voxel_size, metadata.offset, metadata.spatial_axes
        ((4, 2), (40, 20), (False, True, True))
    """
    for multiscale in _multiscales(group_attrs):
        for dataset in multiscale.get("datasets", []):
            if not isinstance(dataset, Mapping) or str(dataset.get("path", "")).strip("/") != leaf:
                continue
            axes = multiscale.get("axes")
            if axes is None:
                spatial = (True,) * ndim
            elif len(axes) != ndim:
                raise MetadataError(
                    f"OME-NGFF multiscales lists {len(axes)} axes for an array of {ndim} axes"
                )
            else:
                spatial = tuple(_axis_is_spatial(axis) for axis in axes)
            scale, translation = _compose(dataset.get("coordinateTransformations", []), ndim)
            shared_scale, shared_translation = _compose(
                multiscale.get("coordinateTransformations", []), ndim
            )
            scale = [s * g for s, g in zip(scale, shared_scale, strict=True)]
            translation = [
                t * g + h
                for t, g, h in zip(translation, shared_scale, shared_translation, strict=True)
            ]
            pick = [d for d in range(ndim) if spatial[d]]
            return SpatialMetadata(
                voxel_size=integer_coordinate([scale[d] for d in pick], "OME-NGFF scale"),
                offset=integer_coordinate([translation[d] for d in pick], "OME-NGFF translation"),
                spatial_axes=spatial,
            )
    return SpatialMetadata()


def read_spatial_metadata(
    attrs: Mapping[str, Any], group_attrs: Mapping[str, Any], leaf: str, ndim: int
) -> SpatialMetadata:
    """Geometry of an array: gunpowder's attributes win, then OME-NGFF, field by field.

    Example:
        >>> read_spatial_metadata({"resolution": [4, 2]}, {}, "raw", 2)
        SpatialMetadata(voxel_size=(4, 2), offset=None, spatial_axes=None)
    """
    own = gunpowder_metadata(attrs)
    ome = ome_ngff_metadata(group_attrs, leaf, ndim)
    return SpatialMetadata(
        voxel_size=own.voxel_size if own.voxel_size is not None else ome.voxel_size,
        offset=own.offset if own.offset is not None else ome.offset,
        spatial_axes=ome.spatial_axes,
    )


#: OME-NGFF (0.4, 0.5) names of 1 to 3 spatial axes, in storage order.
SPACE_AXIS_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}


def ome_ngff_shape(shape: Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """``shape`` without the leading singleton axes that OME-NGFF cannot describe.

    OME-NGFF allows at most one channel axis before the spatial ones; a model's output in
    daskgp's (batch, channels, *spatial) layout has two. While more than one non-spatial axis
    leads, a leading axis of size 1 (the model's batch axis) is dropped; the others are kept.

    Example:
        >>> ome_ngff_shape((1, 1, 20, 30, 30), 3), ome_ngff_shape((1, 3, 20, 30, 30), 3)
        ((1, 20, 30, 30), (3, 20, 30, 30))
        >>> ome_ngff_shape((4, 20, 30, 30), 3), ome_ngff_shape((2, 3, 20, 30, 30), 3)
        ((4, 20, 30, 30), (2, 3, 20, 30, 30))
    """
    shape = tuple(int(s) for s in shape)
    drop = 0
    while len(shape) - drop - spatial_dims > 1 and shape[drop] == 1:
        drop += 1
    return shape[drop:]


def ome_ngff_axes(ndim: int, spatial_dims: int) -> list[dict] | None:
    """OME-NGFF 0.4/0.5 ``axes`` of an array with ``ndim`` axes whose last ``spatial_dims``
    are spatial (z, y, x), or None when no valid ``axes`` describe it.

    Valid ``axes`` have 2 or 3 ``space`` axes and at most one ``channel`` axis before them
    (``time`` is never guessed); an array with more leading axes, or with 1 or more than 3
    spatial axes, has no OME-NGFF description (write it without ``multiscales``).

    Example:
        >>> [axis["name"] for axis in ome_ngff_axes(4, 3)]
        ['c', 'z', 'y', 'x']
        >>> ome_ngff_axes(5, 3) is None, ome_ngff_axes(1, 1) is None
        (True, True)
    """
    channels = ndim - spatial_dims
    if channels not in (0, 1) or spatial_dims not in (2, 3):
        return None
    axes = [{"name": "c", "type": "channel"}] * channels
    return axes + [{"name": name, "type": "space"} for name in SPACE_AXIS_NAMES[spatial_dims]]


def ome_ngff_group_attrs(group_path: str, multiscales: list[dict],
                         existing: Mapping[str, Any] | None = None) -> dict:
    """The attributes to set on the group ``group_path`` that holds ``multiscales``.

    OME-NGFF reserves a group named ``labels`` inside an image for a ``labels`` list of label
    images; gunpowder's ``volumes/labels/neuron_ids`` makes such a group, so it gets an empty
    ``labels`` list (unless it has one) and stays valid while it is an image of its own.

    Example:
        >>> ome_ngff_group_attrs("volumes/labels", [])
        {'multiscales': [], 'labels': []}
    """
    attrs: dict = {"multiscales": multiscales}
    if group_path.rstrip("/").rpartition("/")[2] == "labels" and "labels" not in (existing or {}):
        attrs["labels"] = []
    return attrs
