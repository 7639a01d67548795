"""Specs: what an array is (``ArraySpec``) and what a provider offers (``ProviderSpec``).

Mutable like gunpowder's, so nodes can write ``spec.roi = ...`` on their own copies.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .geometry import Coordinate, Roi
from .keys import ArrayKey, GraphKey

#: dtypes that gunpowder considers interpolatable when a spec does not say.
INTERPOLATABLE_DTYPES = (np.float16, np.float32, np.float64, np.uint8, np.uint16)


def _copy_roi(roi: Roi) -> Roi:
    """An independent copy of ``roi``: a ``Roi`` holds two immutable ``Coordinate``s that
    its setters replace, so a new object sharing them is one (and skips ``Roi.__init__``'s
    re-validation, most of a graph build's ROI cost)."""
    copy = roi.__class__.__new__(roi.__class__)
    copy.__dict__.update(roi.__dict__)
    return copy


def guess_interpolatable(dtype: np.dtype) -> bool:
    """gunpowder's rule: float and small unsigned intensity types interpolate, labels do not.

    Example:
        >>> guess_interpolatable(np.dtype("uint64"))
        False
    """
    return np.dtype(dtype).type in INTERPOLATABLE_DTYPES


class ArraySpec:
    """Describes an array: its ROI and voxel size in world units, dtype and flags.

    Args:
        roi (Roi, optional): the region covered, in world units.
        voxel_size (Coordinate, optional): world units per voxel in each spatial dimension.
        interpolatable (bool, optional): whether values may be interpolated (raw) or not (labels).
        nonspatial (bool): the array has no spatial extent (a vector, a scalar, a shift).
        dtype (numpy dtype, optional): the data type.
        placeholder (bool): requested only for its ROI; no data is delivered.

    Example:
        >>> ArraySpec(roi=Roi((0, 0, 0), (40, 40, 40)), voxel_size=Coordinate(4, 4, 4)).roi
        [0:40, 0:40, 0:40] (40, 40, 40)
    """

    def __init__(
        self,
        roi: Roi | None = None,
        voxel_size: Coordinate | None = None,
        interpolatable: bool | None = None,
        nonspatial: bool = False,
        dtype: np.dtype | type | str | None = None,
        placeholder: bool = False,
    ) -> None:
        self.roi = roi
        self.voxel_size = None if voxel_size is None else Coordinate(voxel_size)
        self.interpolatable = interpolatable
        self.nonspatial = nonspatial
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.placeholder = placeholder

    def copy(self) -> ArraySpec:
        """A deep copy (fast: only the ROI is mutable, the other fields are values)."""
        spec = ArraySpec.__new__(ArraySpec)
        spec.__dict__.update(self.__dict__)
        if self.roi is not None:
            spec.roi = _copy_roi(self.roi)
        return spec

    def update_with(self, spec: ArraySpec) -> None:
        """Grow this spec to cover ``spec`` (gunpowder's rule): the ROI becomes the union, and
        every field ``spec`` sets (not None) is taken from it.

        Example:
            >>> a = ArraySpec(roi=Roi((0, 0), (4, 4)))
            >>> a.update_with(ArraySpec(roi=Roi((2, 2), (4, 4)), dtype="uint8"))
            >>> a.roi, a.dtype
            ([0:6, 0:6] (6, 6), dtype('uint8'))
        """
        if self.roi is not None and spec.roi is not None:
            self.roi = self.roi.union(spec.roi)
        elif spec.roi is not None:
            self.roi = spec.roi
        for field in ("voxel_size", "interpolatable", "nonspatial", "dtype", "placeholder"):
            if getattr(spec, field) is not None:
                setattr(self, field, getattr(spec, field))

    def _fields(self) -> tuple:
        return (
            self.roi,
            self.voxel_size,
            self.interpolatable,
            self.nonspatial,
            self.dtype,
            self.placeholder,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArraySpec) and self._fields() == other._fields()

    def __repr__(self) -> str:
        parts = [
            f"roi={self.roi}",
            f"voxel_size={self.voxel_size}",
            f"interpolatable={self.interpolatable}",
            f"nonspatial={self.nonspatial}",
            f"dtype={self.dtype}",
        ]
        if self.placeholder:
            parts.append("placeholder=True")
        return "ArraySpec(" + ", ".join(parts) + ")"

    def __dask_tokenize__(self):
        return tuple(str(f) for f in self._fields())


class GraphSpec:
    """Describes a graph (points and edges): its ROI in world units, directedness, dtype.

    Args:
        roi (Roi, optional): the region the graph covers, in world units.
        directed (bool, optional): whether edges are directed (None: not said; a ``Graph``
            then counts as directed, as in gunpowder).
        dtype (numpy dtype): the dtype of node locations (gunpowder: float32).
        placeholder (bool): requested only for its ROI; no graph is delivered.

    Example:
        >>> spec = GraphSpec(roi=Roi((0, 0), (10, 10)))
        >>> spec.update_with(GraphSpec(roi=Roi((5, 5), (10, 10)), directed=False))
        >>> spec.roi, spec.directed
        ([0:15, 0:15] (15, 15), False)
    """

    def __init__(self, roi: Roi | None = None, directed: bool | None = None,
                 dtype: np.dtype | type | str = np.float32, placeholder: bool = False) -> None:
        self.roi = roi
        self.directed = directed
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.placeholder = placeholder

    def update_with(self, spec: GraphSpec) -> None:
        """Grow the ROI to cover ``spec``'s and take its set fields, as gunpowder does."""
        if self.roi is not None and spec.roi is not None:
            self.roi = self.roi.union(spec.roi)
        elif spec.roi is not None:
            self.roi = spec.roi
        if spec.directed is not None:
            self.directed = spec.directed
        if spec.dtype is not None:
            self.dtype = spec.dtype
        if spec.placeholder is not None:
            self.placeholder = spec.placeholder

    def copy(self) -> GraphSpec:
        """A copy (fast: only the ROI is mutable, the other fields are values)."""
        spec = GraphSpec.__new__(GraphSpec)
        spec.__dict__.update(self.__dict__)
        if self.roi is not None:
            spec.roi = _copy_roi(self.roi)
        return spec

    def _fields(self) -> tuple:
        return (self.roi, self.directed, self.dtype, self.placeholder)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraphSpec) and self._fields() == other._fields()

    def __repr__(self) -> str:
        placeholder = ", placeholder=True" if self.placeholder else ""
        return (f"GraphSpec(roi={self.roi}, directed={self.directed}, dtype={self.dtype}"
                f"{placeholder})")

    def __dask_tokenize__(self):
        return tuple(str(f) for f in self._fields())


class ProviderSpec:
    """A mapping from keys to specs: what a provider offers, or what a request asks for.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> spec = ProviderSpec({raw: ArraySpec(roi=Roi((0,), (10,)))})
        >>> raw in spec
        True
    """

    def __init__(self, array_specs: dict | None = None, graph_specs: dict | None = None) -> None:
        self.array_specs: dict[ArrayKey, ArraySpec] = {}
        self.graph_specs: dict[GraphKey, GraphSpec] = {}
        for key, spec in (array_specs or {}).items():
            self[key] = spec
        for key, spec in (graph_specs or {}).items():
            self[key] = spec

    def __setitem__(self, key: ArrayKey | GraphKey, spec: ArraySpec | GraphSpec) -> None:
        if isinstance(spec, Roi):  # gunpowder's ``request[key] = Roi(...)``
            spec = ArraySpec(roi=spec) if isinstance(key, ArrayKey) else GraphSpec(roi=spec)
        if isinstance(key, ArrayKey):
            if not isinstance(spec, ArraySpec):
                raise TypeError(f"the spec for array {key} must be an ArraySpec, got {spec!r}")
            self.array_specs[key] = spec.copy()
        elif isinstance(key, GraphKey):
            if isinstance(spec, Roi):  # gunpowder's shorthand
                spec = GraphSpec(roi=spec)
            if not isinstance(spec, GraphSpec):
                raise TypeError(f"the spec for graph {key} must be a GraphSpec, got {spec!r}")
            self.graph_specs[key] = spec.copy()
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be used as keys, got {key!r}")

    def __getitem__(self, key: ArrayKey | GraphKey) -> ArraySpec | GraphSpec:
        specs = self.array_specs if isinstance(key, ArrayKey) else self.graph_specs
        if key not in specs:
            raise KeyError(f"{key} is not in this spec; it has {self.keys()}")
        return specs[key]

    def __delitem__(self, key: ArrayKey | GraphKey) -> None:
        specs = self.array_specs if isinstance(key, ArrayKey) else self.graph_specs
        del specs[key]

    def __contains__(self, key: object) -> bool:
        return key in self.array_specs or key in self.graph_specs

    def __len__(self) -> int:
        return len(self.array_specs) + len(self.graph_specs)

    def __iter__(self) -> Iterator[ArrayKey | GraphKey]:
        yield from self.array_specs
        yield from self.graph_specs

    def keys(self) -> list:
        """All keys, arrays first."""
        return list(self)

    def items(self) -> Iterator[tuple]:
        """(key, spec) pairs, arrays first."""
        yield from self.array_specs.items()
        yield from self.graph_specs.items()

    def get_total_roi(self) -> Roi | None:
        """The union of all spatial ROIs, or None when there is none."""
        total = None
        for _, spec in self.items():
            if getattr(spec, "nonspatial", False) or spec.roi is None:
                continue
            total = spec.roi if total is None else total.union(spec.roi)
        return total

    def get_common_roi(self) -> Roi | None:
        """The intersection of all spatial ROIs, or None when there is none."""
        common = None
        for _, spec in self.items():
            if getattr(spec, "nonspatial", False) or spec.roi is None:
                continue
            common = spec.roi if common is None else common.intersect(spec.roi)
        return common

    def remove_placeholders(self) -> None:
        """Drop the keys whose spec is only a placeholder."""
        for key in [k for k, spec in self.items() if spec.placeholder]:
            del self[key]

    def get_lcm_voxel_size(self, array_keys=None) -> Coordinate | None:
        """Least common multiple of the voxel sizes of ``array_keys`` (default: all arrays)."""
        from .geometry import lcm_voxel_size

        keys = self.array_specs.keys() if array_keys is None else array_keys
        return lcm_voxel_size(
            self.array_specs[k].voxel_size for k in keys if k in self.array_specs
        )

    def copy(self):
        """A copy whose specs can be changed without changing this one's."""
        spec = self.__class__.__new__(self.__class__)
        spec.__dict__.update(self.__dict__)
        spec.array_specs = {key: s.copy() for key, s in self.array_specs.items()}
        spec.graph_specs = {key: s.copy() for key, s in self.graph_specs.items()}
        return spec

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProviderSpec)
            and self.array_specs == other.array_specs
            and self.graph_specs.keys() == other.graph_specs.keys()
        )

    def __dask_tokenize__(self):
        return (type(self).__name__, repr(self))

    def __repr__(self) -> str:
        lines = [f"\t{key}: {spec}" for key, spec in self.items()]
        return type(self).__name__ + "(\n" + "\n".join(lines) + "\n)"
