"""``Array`` and ``Batch``: data with specs, lazy (dask) while a batch is built, numpy after.

``Batch.compute()`` materializes a lazy batch with one ``dask.compute`` call
(``compute_arrays``).
"""

from __future__ import annotations

import copy as copy_module
import itertools
from collections.abc import Iterator

import dask
import dask.array as da
import numpy as np

from .errors import ArrayError
from .geometry import Roi, roi_to_voxel_slices
from .keys import ArrayKey, GraphKey
from .specs import ArraySpec

_OWN_CHUNK = "_daskgp_own_chunk"


def mark_own_chunk(array: da.Array) -> da.Array:
    """Record that ``array``'s one chunk is computed as a new numpy array (or a view of one)
    that no other task of its graph keeps: a warp task's output, SimpleAugment's view of it.

    ``compute_arrays`` then returns that chunk as the task made it, without the defensive copy
    that ``dask.compute`` makes of every one-chunk result (dask cannot tell a fresh chunk from
    a buffer held in the graph, such as ``da.from_array``'s data or a persisted chunk). The
    record lives on this very array object: any operation, ``persist`` included, makes an
    array without it. Only mark arrays whose task allocates its output on every run.

    Example:
        >>> owns_chunk(mark_own_chunk(da.zeros(3) + 1)), owns_chunk(da.zeros(3) + 1)
        (True, False)
    """
    if array.npartitions != 1:
        raise ValueError(f"mark_own_chunk takes a one-chunk array, got {array.npartitions} chunks")
    setattr(array, _OWN_CHUNK, True)
    return array


def owns_chunk(array) -> bool:
    """True where ``mark_own_chunk`` marked this very array object."""
    return getattr(array, _OWN_CHUNK, False) is True


class _OwnChunk:
    """A dask collection that computes a marked one-chunk array to its chunk as computed.

    It shares the array's graph, keys and optimizer (so ``dask.compute`` optimizes and runs it
    with the other arrays of the call, as one graph); only its finalize differs."""

    __slots__ = ("_array",)

    def __init__(self, array: da.Array) -> None:
        self._array = array

    def __dask_graph__(self):
        return self._array.__dask_graph__()

    def __dask_keys__(self):
        return self._array.__dask_keys__()

    def __dask_layers__(self):
        return self._array.__dask_layers__()

    @property
    def __dask_optimize__(self):
        return self._array.__dask_optimize__

    @property
    def __dask_scheduler__(self):
        return self._array.__dask_scheduler__

    def __dask_postcompute__(self):
        return _only_chunk, ()

    def __dask_tokenize__(self):
        return ("daskgp-own-chunk", self._array.name)


def _only_chunk(results):
    while isinstance(results, (list, tuple)):
        (results,) = results
    return results


def compute_arrays(arrays, *others, scheduler=None, **kwargs) -> tuple:
    """``dask.compute(*arrays, *others)`` on ``scheduler`` (as ``local_get`` takes it), in one
    call; the one chunk of an array marked by ``mark_own_chunk`` comes back uncopied.

    That skips a batch-sized copy per warped array (a strided one after SimpleAugment's
    transpose). Only on dask's local schedulers (a cluster's results may be a worker's own
    buffers); two results that share memory (one warp output returned under two keys) are
    copied apart, so every returned array is the caller's alone, as with ``dask.compute``.
    Used by ``Batch.compute``, PreCache's prefetcher and the TensorFlow nodes.

    Example:
        >>> a, = compute_arrays([mark_own_chunk(da.ones(3) * 2)], scheduler="sync")
        >>> a
        array([2., 2., 2.])
    """
    import dask.local
    import dask.multiprocessing
    import dask.threaded

    from .scheduling import local_get  # scheduling imports this module

    get = local_get(scheduler)
    local = get in (dask.local.get_sync, dask.threaded.get, dask.multiprocessing.get)
    arrays = [_OwnChunk(a) if local and owns_chunk(a) else a for a in arrays]
    values = list(dask.compute(*arrays, *others, scheduler=get, **kwargs))
    own = []
    for i, array in enumerate(arrays):
        if isinstance(array, _OwnChunk):
            if any(np.may_share_memory(values[i], v) for v in own):
                values[i] = values[i].copy()
            own.append(values[i])
    return tuple(values)


class Array:
    """An array's data (``dask.array.Array`` or ``numpy.ndarray``) with its ``ArraySpec``.

    The last ``roi.dims`` axes are spatial; leading axes are channels. A spatial array's shape
    must equal ``roi.shape / voxel_size``, and its dtype the spec's (filled in when unset).

    Args:
        data (dask or numpy array): the values.
        spec (ArraySpec): ROI, voxel size, dtype and flags.
        attrs (dict, optional): free-form metadata.

    Example:
        >>> a = Array(np.zeros((10, 10)), ArraySpec(roi=Roi((0, 0), (20, 20)), voxel_size=(2, 2)))
        >>> a.crop(Roi((4, 4), (4, 6))).data.shape
        (2, 3)
    """

    def __init__(self, data, spec: ArraySpec | None = None, attrs: dict | None = None) -> None:
        if not isinstance(data, (da.Array, np.ndarray)):
            data = np.asarray(data)
        spec = ArraySpec() if spec is None else spec.copy()
        if spec.dtype is None:
            spec.dtype = data.dtype
        elif np.dtype(spec.dtype) != data.dtype:
            raise ArrayError(f"array data has dtype {data.dtype}, but its spec says {spec.dtype}")
        if not spec.nonspatial and spec.roi is not None and spec.voxel_size is not None:
            expected = tuple(spec.roi.shape / spec.voxel_size)
            spatial_shape = data.shape[data.ndim - spec.roi.dims:] if data.ndim else ()
            if data.ndim < spec.roi.dims or tuple(spatial_shape) != expected:
                raise ArrayError(
                    f"array data of shape {data.shape} does not match ROI {spec.roi} at voxel "
                    f"size {spec.voxel_size}: the last {spec.roi.dims} axes must be {expected}"
                )
        self.data = data
        self.spec = spec
        self.attrs = {} if attrs is None else dict(attrs)

    @classmethod
    def _checked(cls, data, spec: ArraySpec, attrs: dict) -> Array:
        """An array of ``data`` and ``spec`` known to match (taken, not copied), without
        ``__init__``'s checks."""
        array = cls.__new__(cls)
        array.data, array.spec, array.attrs = data, spec, dict(attrs)
        return array

    @property
    def is_lazy(self) -> bool:
        """True while the data is a dask array."""
        return isinstance(self.data, da.Array)

    def crop(self, roi: Roi, copy: bool = True) -> Array:
        """This array restricted to ``roi`` (world units; must lie inside).

        As in gunpowder, numpy data is copied unless ``copy=False`` (then it is a view);
        dask data is never copied (dask arrays are immutable).
        """
        if self.spec.nonspatial:
            return self
        if self.is_lazy and roi == self.spec.roi:
            # Already that ROI (the usual case between nodes): the same data, a new spec.
            spec = self.spec.copy()
            return Array._checked(self.data, spec, copy_module.deepcopy(self.attrs) if copy
                                  else self.attrs)
        if not self.spec.roi.contains(roi):
            raise ArrayError(f"cannot crop array with ROI {self.spec.roi} to {roi}: not contained")
        slices = roi_to_voxel_slices(roi, self.spec.roi, self.spec.voxel_size)
        channels = (slice(None),) * (self.data.ndim - roi.dims)
        spec = self.spec.copy()
        spec.roi = roi
        data = self.data[channels + slices]
        if copy and not self.is_lazy:
            data = np.array(data)
        return Array(data, spec, copy_module.deepcopy(self.attrs) if copy else self.attrs)

    def merge(self, array: Array, copy_from_self: bool = False, copy: bool = False) -> Array:
        """Not provided, as in gunpowder 1.5 (whose ``Array.merge`` raises): put the array
        into a ``Batch`` and use ``Batch.merge``, or crop and assign ``.data``."""
        raise NotImplementedError(
            "Array.merge is not provided (gunpowder 1.5 raises 'Merge function should not be "
            "used!'): merge batches with Batch.merge, or crop with Array.crop"
        )

    def copy(self) -> Array:
        """A copy with its own spec (data is shared: dask arrays are immutable)."""
        return Array(self.data, self.spec, copy_module.deepcopy(self.attrs))

    def __repr__(self) -> str:
        kind = "dask" if self.is_lazy else "numpy"
        return f"Array({kind} {self.data.shape} {self.data.dtype}, {self.spec})"


class Batch:
    """The arrays (and graphs) delivered for a request.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> batch = Batch()
        >>> batch[raw] = Array(np.ones((4,)), ArraySpec(roi=Roi((0,), (4,)), voxel_size=(1,)))
        >>> batch[raw].data.sum()
        np.float64(4.0)
    """

    _ids = itertools.count()

    def __init__(self) -> None:
        self.id = next(Batch._ids)
        self.arrays: dict[ArrayKey, Array] = {}
        self.graphs: dict = {}
        self.loss = None
        self.iteration = None
        self.random_seed: int | None = None
        self.profiling_stats = None
        #: dask collections (Delayed, or small arrays from ``ZarrWrite``) computed together
        #: with the arrays (e.g. ``Snapshot`` writes).
        self.side_effects: list = []

    def __setitem__(self, key: ArrayKey | GraphKey, value) -> None:
        if isinstance(key, ArrayKey):
            if not isinstance(value, Array):
                raise TypeError(f"batch[{key}] must be an Array, got {type(value).__name__}")
            self.arrays[key] = value
        elif isinstance(key, GraphKey):
            from .graph import Graph

            if not isinstance(value, Graph):
                raise TypeError(f"batch[{key}] must be a Graph, got {type(value).__name__}")
            self.graphs[key] = value
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be used as keys, got {key!r}")

    def __getitem__(self, key: ArrayKey | GraphKey):
        store = self.arrays if isinstance(key, ArrayKey) else self.graphs
        if key not in store:
            raise KeyError(f"{key} is not in this batch; it has {list(self.keys())}")
        return store[key]

    def __delitem__(self, key: ArrayKey | GraphKey) -> None:
        store = self.arrays if isinstance(key, ArrayKey) else self.graphs
        del store[key]

    def __contains__(self, key: object) -> bool:
        return key in self.arrays or key in self.graphs

    def __len__(self) -> int:
        return len(self.arrays) + len(self.graphs)

    def keys(self) -> Iterator:
        """All keys, arrays first."""
        yield from self.arrays
        yield from self.graphs

    def items(self) -> Iterator[tuple]:
        """(key, Array or graph) pairs."""
        yield from self.arrays.items()
        yield from self.graphs.items()

    def get_total_roi(self) -> Roi | None:
        """The union of all spatial ROIs in this batch."""
        total = None
        for array in self.arrays.values():
            if array.spec.nonspatial or array.spec.roi is None:
                continue
            total = array.spec.roi if total is None else total.union(array.spec.roi)
        for graph in self.graphs.values():
            if graph.spec.roi is not None:
                total = graph.spec.roi if total is None else total.union(graph.spec.roi)
        return total

    def _with_arrays(self, arrays: dict[ArrayKey, Array]) -> Batch:
        batch = Batch()
        batch.arrays = arrays
        batch.graphs = dict(self.graphs)
        for attr in ("id", "loss", "iteration", "random_seed", "profiling_stats"):
            setattr(batch, attr, getattr(self, attr))
        batch.side_effects = list(self.side_effects)
        return batch

    def crop(self, request, copy: bool = False) -> Batch:
        """A batch with only the keys of ``request``, each cropped to its requested ROI (numpy
        data copied if ``copy``, as in gunpowder; graphs with ``Graph.crop``: dangling nodes of
        edges that leave the ROI stay)."""
        arrays = {}
        for key, spec in request.array_specs.items():
            if key not in self.arrays:
                continue
            array = self.arrays[key]
            if spec.roi is not None and not array.spec.nonspatial:
                array = array.crop(spec.roi, copy=copy)
            arrays[key] = array
        cropped = self._with_arrays(arrays)
        cropped.graphs = {}
        for key, spec in request.graph_specs.items():
            if key in self.graphs:
                graph = self.graphs[key]
                cropped.graphs[key] = graph if spec.roi is None else graph.crop(spec.roi)
        return cropped

    def merge(self, batch: Batch, merge_profiling_stats: bool = True) -> Batch:
        """This batch with the arrays of ``batch`` added or replacing ours (gunpowder's rule:
        ``batch``'s version wins). Profiling stats: ``batch``'s replace ours unless
        ``merge_profiling_stats=False``."""
        arrays = dict(self.arrays)
        arrays.update(batch.arrays)
        merged = self._with_arrays(arrays)
        merged.graphs.update(batch.graphs)
        # By identity: ``==`` on a Delayed builds a task instead of comparing.
        merged.side_effects += [t for t in batch.side_effects
                                if not any(t is s for s in merged.side_effects)]
        attrs = ("loss", "iteration") + (("profiling_stats",) if merge_profiling_stats else ())
        for attr in attrs:
            if getattr(batch, attr) is not None:
                setattr(merged, attr, getattr(batch, attr))
        return merged

    def compute(self, scheduler=None, **kwargs) -> Batch:
        """This batch with every dask array computed to numpy, in one ``dask.compute`` call.

        ``side_effects`` (e.g. snapshot writes) run in the same call, sharing its inputs. This
        is a materialization boundary. ``scheduler`` is any of dask's (``"sync"``,
        ``"threads"``, ``"processes"``, a ``distributed.Client``); None follows dask's rules.
        """
        keys = [k for k, a in self.arrays.items() if a.is_lazy]
        values = compute_arrays([self.arrays[k].data for k in keys], *self.side_effects,
                                scheduler=scheduler, **kwargs)
        return self.with_computed(keys, values[: len(keys)])

    def with_computed(self, keys: list, values) -> Batch:
        """This batch with the data of ``keys`` replaced by computed ``values``, side effects
        done."""
        arrays = dict(self.arrays)
        for key, value in zip(keys, values, strict=True):
            arrays[key] = Array(np.asarray(value), self.arrays[key].spec, self.arrays[key].attrs)
        batch = self._with_arrays(arrays)
        batch.side_effects = []
        return batch

    def persist(self, scheduler=None, **kwargs) -> Batch:
        """This batch with its dask arrays persisted (in memory, or on a cluster's workers)."""
        from .scheduling import local_get  # scheduling imports this module

        keys = [k for k, a in self.arrays.items() if a.is_lazy]
        values = dask.persist(*(self.arrays[k].data for k in keys),
                              scheduler=local_get(scheduler), **kwargs)
        arrays = dict(self.arrays)
        for key, value in zip(keys, values, strict=False):
            arrays[key] = Array(value, self.arrays[key].spec, self.arrays[key].attrs)
        return self._with_arrays(arrays)

    def _repr_html_(self) -> str:
        """Jupyter's view: per key shape, dtype, ROI, and a mid-slice picture of each spatial
        array (``daskgp.display``; on a lazy batch only the slices are computed)."""
        from .display import batch_html

        return batch_html(self)

    def _repr_png_(self) -> bytes | None:
        """A PNG of the mid-slices of the spatial arrays (``daskgp.display``)."""
        from .display import batch_png

        return batch_png(self)

    def __repr__(self) -> str:
        lines = [f"\t{key}: {array}" for key, array in self.items()]
        return f"Batch(id={self.id}\n" + "\n".join(lines) + "\n)"
