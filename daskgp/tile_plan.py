"""Plan once, run many: the tiles of a ``daskgp predict`` job as planned graphs, one task each.

A translation-equivariant pipeline is planned for one tile of each kind (interior, clamped
edges) and that plan is shifted to every other tile of its kind; any other pipeline is planned
tile by tile, as the job's window asks for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from operator import getitem

from dask.core import flatten, istask
from dask.core import get as get_in_order
from dask.order import order
from dask.task_spec import DataNode, GraphNode, Task

from .draws import recording_draws
from .io.array_writer import _BlockWrite
from .io.blocks import ScanTiling, WriteBlocks
from .io.checksums import checksums_with, combine
from .io.region import RegionView
from .io.translation import translated
from .numpy_nodes import learned_outputs
from .request import BatchRequest
from .scheduling import usable_cores

logger = logging.getLogger(__name__)

#: daskgp nodes whose plan depends on where a tile is, or that compute while planning.
POSITION_DEPENDENT = frozenset({"Pad", "PreCache", "PrintProfilingStats", "Snapshot", "Stack",
                                "RandomLocation", "Reject", "RandomProvider",
                                "SpecifiedLocation", "DaisyRequestBlocks"})


def compute_slots() -> int:
    """How many tiles of a process compute at once: the cores it may run on
    (``scheduling.usable_cores``: CPU affinity and cgroup quota counted).

    Example:
        >>> compute_slots() >= 1
        True
    """
    return usable_cores()


_GATE: tuple[int, threading.Semaphore] | None = None
_GATE_LOCK = threading.Lock()


def _compute_gate() -> threading.Semaphore:
    """The process's compute slots (one semaphore per process, made on first use)."""
    global _GATE
    with _GATE_LOCK:
        if _GATE is None or _GATE[0] != os.getpid():
            _GATE = (os.getpid(), threading.Semaphore(compute_slots()))
        return _GATE[1]


def _does_io(node) -> bool:
    """Whether a task reads a source region or writes an output block (its function, or one of
    its direct arguments, is a ``RegionView`` or a ``_BlockWrite``)."""
    if not isinstance(node, Task):
        return False
    values = [node.func, *node.args, *node.kwargs.values()]
    return any(isinstance(v.value if isinstance(v, DataNode) else v, (RegionView, _BlockWrite))
               for v in values)


class TilePlan:
    """One tile's graph (its writes and what they need), computed in one task, synchronously.

    ``run(shift)`` computes it with every translatable read and write moved by ``shift``
    (world units) and returns one checksum per output: the sum of the checksums of the blocks
    the tile wrote (``daskgp.io.checksums``).

    A job keeps more tiles in flight than there are cores, so that one tile's reads and writes
    overlap another's computing; but its compute tasks (everything but reads and writes) hold
    one of the process's ``compute_slots()`` while they run, so that no more of them run at
    once than there are cores: four convolutions time-sliced on two cores cost 15-20% more
    CPU than two at a time (``benchmarks/predict.py``'s kernel, A/B on this project's
    machine: their working sets evict each other from the cores' caches).

    Args:
        side_effects (list of dask collections): the tile's writes; the last ``num_outputs``
            are the job's outputs, in order.
        num_outputs (int): how many of them are outputs.

    Example:
        >>> import dask.array as da
        >>> plan = TilePlan([da.ones((2,), chunks=1)], num_outputs=1)
        >>> plan.run()
        (2,)
    """

    def __init__(self, side_effects: Sequence, num_outputs: int) -> None:
        self.keys = [list(flatten(collection.__dask_keys__())) for collection in side_effects]
        self.num_outputs = num_outputs
        graph: dict = {}
        for collection, keys in zip(side_effects, self.keys, strict=True):
            graph.update(dict(collection.__dask_graph__().cull(set(keys))))
        self._legacy = any(istask(node) and not isinstance(node, GraphNode)
                           for node in graph.values())
        if self._legacy:  # old-style tuple tasks: dask's own ``get`` runs (and orders) them
            self._graph = graph
            self.nodes = []
            return
        # Ordered once here, not on every run: dask's ``get`` orders the graph at every call,
        # which costs more than a small tile's I/O. Unoptimized: the tasks run in this one
        # task anyway, so fusing them would only nest them.
        nodes = {key: node if isinstance(node, GraphNode) else DataNode(key, node)
                 for key, node in graph.items()}
        priorities = order(nodes)
        self.nodes = sorted(nodes.values(), key=lambda node: priorities[node.key])
        self._graph = nodes
        # Per node, in order: whether it computes (takes a compute slot) or does I/O, or is a
        # trivial step (an alias, data, a getitem of a node's outputs) that needs no slot.
        self._gated = [isinstance(node, Task) and not _does_io(node)
                       and node.func is not getitem for node in self.nodes]

    @property
    def graph(self) -> dict:
        """The tile's tasks, by key."""
        return dict(self._graph)

    def run(self, shift: Sequence[int] | None = None) -> tuple[int, ...]:
        """Compute the tile (moved by ``shift``); the outputs' checksums."""
        outputs = self.keys[len(self.keys) - self.num_outputs:]
        with translated(shift):
            if self._legacy:
                flat = [key for keys in self.keys for key in keys]  # every write runs
                values = dict(zip(flat, get_in_order(self._graph, flat), strict=True))
            else:
                values = {}
                gate = _compute_gate()
                for node, gated in zip(self.nodes, self._gated, strict=True):
                    with gate if gated else contextlib.nullcontext():
                        values[node.key] = node(values)
        return tuple(combine(int(values[key].ravel()[0]) for key in keys) for keys in outputs)


def run_tile(plan: TilePlan, shift, checksum: str | None = None) -> tuple[int, ...]:
    """The task of one tile: ``plan.run(shift)``, its blocks' checksums made with algorithm
    ``checksum`` (``daskgp.io.checksums``; None: the default)."""
    with checksums_with(checksum):
        return plan.run(shift)


def equivariance_problem(pipeline, drawn: Sequence[str]) -> str | None:
    """Why the plan of one tile, shifted, may not be another tile's plan; None if it is.

    ``drawn``: the nodes that drew from ``rng`` while a tile was planned. A pipeline is
    translation-equivariant when every source is translatable (``ZarrSource``,
    ``Hdf5Source``), no node drew random parameters, no numpy node may draw from the global
    RNGs (``uses_global_random``), and no node depends on the tile's position or computes
    while planning (``Pad``, ``PreCache``, ``PrintProfilingStats``, ... or a node with
    ``translation_equivariant = False``).
    """
    if drawn:
        return f"{sorted(set(drawn))} draw random parameters"
    for node in pipeline.nodes():
        name = type(node).__name__
        if getattr(node, "translation_equivariant", True) is False or name in POSITION_DEPENDENT:
            return f"{node.name()} depends on the tile's position or computes while planning"
        if not node.get_upstream_providers() and not getattr(node, "translatable", False):
            return f"the source {node.name()} cannot shift its reads (only ZarrSource and " \
                   "Hdf5Source can)"
        if not node.lazy and getattr(node, "uses_global_random", True):
            return (f"{node.name()} is a numpy node that may draw from the global random "
                    "state (set uses_global_random = False on it if it does not)")
    return None


@dataclass
class TilePlanner:
    """Plans for the tiles of one scan: shared per kind of tile, or one per tile.

    Args:
        scan (Scan): the job's ``Scan`` (set up), whose upstream is the pipeline and writers.
        pipeline (Pipeline): the job, to check for equivariance.
        tiling (ScanTiling), blocks (WriteBlocks): from ``scan.tiling_for``.
        num_outputs (int): outputs written by each tile (the last side effects).
        plan_once (bool): allow plans to be shared; False plans every tile.
        written_keys (list of ArrayKey, optional): the keys written; only their owned blocks
            tell kinds of tiles apart (default: every reference key).
    """

    scan: object
    pipeline: object
    tiling: ScanTiling
    blocks: WriteBlocks
    num_outputs: int
    plan_once: bool = True
    written_keys: tuple = ()

    def __post_init__(self) -> None:
        self._plans: dict = {}
        self.problem: str | None = None if self.plan_once else "plan_once=False"
        self._checked = not self.plan_once
        self.plans_made = 0
        self._bounds: list | None = None

    def _kind(self, index: tuple[int, ...]) -> tuple:
        """Tiles of one kind are exact translations of each other (owned blocks included):
        per written key, the owned block's begin relative to the tile's shift and its shape
        (integer arithmetic on the tiling's block bounds, made once)."""
        if self._bounds is None:
            keys = self.written_keys or tuple(self.scan.reference.array_specs)
            self._bounds = [(str(key), self.tiling.bounds(self.scan.reference[key].roi))
                            for key in sorted(keys, key=str)]
        positions = self.tiling.positions
        return tuple(
            (name, tuple(b[i] - p[i] for b, p, i in zip(bounds, positions, index, strict=True)),
             tuple(b[i + 1] - b[i] for b, i in zip(bounds, index, strict=True)))
            for name, bounds in self._bounds)

    def _shift(self, index: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(p[i]) for p, i in zip(self.tiling.positions, index, strict=True))

    def _learned(self) -> int:
        return sum(len(learned_outputs(node)) for node in self.pipeline.nodes()
                   if not node.lazy)

    def _plan(self, index: tuple[int, ...]) -> TilePlan:
        learned = self._learned()
        with recording_draws() as drawn:
            tile, _ = self.scan.plan_tile(BatchRequest(), self.tiling, self.blocks, index)
        if self._learned() != learned:
            # A numpy node ran in the driver to learn its outputs' shapes and dtypes: the plan
            # holds that tile's computed outputs, which a shift would not move. Plan it again,
            # now lazily (the node's task runs for every tile).
            tile, _ = self.scan.plan_tile(BatchRequest(), self.tiling, self.blocks, index)
        self.plans_made += 1
        if not self._checked:
            self._checked = True
            # The scan draws each tile's seed; what matters is whether anything uses one.
            drawn = list(drawn)
            drawn.remove(self.scan.name())
            self.problem = equivariance_problem(self.pipeline, drawn)
            if self.problem is not None:
                logger.info("planning every tile: %s", self.problem)
        return TilePlan(tile.side_effects, self.num_outputs)

    def plan(self, index: tuple[int, ...]) -> tuple[TilePlan, tuple[int, ...] | None, bool]:
        """The plan for tile ``index``, the shift to run it with, and whether it is shared."""
        if self._checked and self.problem is not None:
            return self._plan(index), None, False
        kind = self._kind(index)
        if kind not in self._plans:
            plan = self._plan(index)
            if self.problem is not None:
                return plan, None, False
            self._plans[kind] = (plan, self._shift(index))
        plan, origin = self._plans[kind]
        return plan, tuple(s - o for s, o in zip(self._shift(index), origin, strict=True)), True
