"""A sliding window of job units (tiles, batches) on a local pool or a ``distributed.Client``.

Units come from a lazy iterator, at most ``in_flight`` at a time, so the driver never holds
more than the window however many units a job has; results come back as units finish.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from . import _pdeathsig
from .scheduling import is_client

#: One unit of a job: a tag for ``on_done``, the function, its arguments. Arguments that are
#: ``Shared`` travel to workers once (scattered on a cluster, pickled once for processes).
Unit = tuple[Any, Callable, tuple]


class Shared:
    """An argument used by many units (a tile plan): sent to workers once, not per unit.

    Example:
        >>> Shared([1, 2]).value
        [1, 2]
    """

    def __init__(self, value: Any) -> None:
        self.value = value
        self._payload: bytes | None = None

    def payload(self) -> tuple[str, bytes]:
        """(digest, cloudpickled value), made once."""
        if self._payload is None:
            import cloudpickle

            self._payload = cloudpickle.dumps(self.value)
            self._digest = hashlib.sha1(self._payload).hexdigest()
        return self._digest, self._payload


_UNPICKLED: dict[str, Any] = {}


def _call_in_process(function_payload: bytes, args_payload: bytes,
                     shared: dict[int, tuple[str, bytes]]) -> Any:
    """Run a unit in a worker process; shared arguments are unpickled once per process."""
    import cloudpickle

    function = cloudpickle.loads(function_payload)
    values = list(cloudpickle.loads(args_payload))
    for position, (digest, payload) in shared.items():
        if digest not in _UNPICKLED:
            if len(_UNPICKLED) > 16:
                _UNPICKLED.clear()
            _UNPICKLED[digest] = cloudpickle.loads(payload)
        values[position] = _UNPICKLED[digest]
    return function(*values)


def _plain(args: tuple) -> tuple:
    return tuple(a.value if isinstance(a, Shared) else a for a in args)


def _run_pool(units: Iterator[Unit], pool: Executor, in_flight: int,
              on_done: Callable[[Any, Any], None], prepare) -> None:
    running: dict = {}
    try:
        while True:
            while len(running) < in_flight:
                unit = next(units, None)
                if unit is None:
                    break
                tag, function, args = unit
                running[pool.submit(*prepare(function, args))] = tag
            if not running:
                return
            done, _ = wait_futures(running, return_when=FIRST_COMPLETED)
            for future in done:
                on_done(running.pop(future), future.result())
    finally:
        for future in running:
            future.cancel()


def _run_processes(units: Iterator[Unit], in_flight: int, on_done) -> None:
    import cloudpickle

    functions: dict = {}

    def prepare(function, args):
        if function not in functions:
            functions[function] = cloudpickle.dumps(function)
        shared = {i: a.payload() for i, a in enumerate(args) if isinstance(a, Shared)}
        plain = tuple(None if isinstance(a, Shared) else a for a in args)
        return _call_in_process, functions[function], cloudpickle.dumps(plain), shared

    # spawn: a forked child would inherit the driver's threads and locks.
    pool = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context(
        "spawn"), **_pdeathsig.pool_options())
    try:
        _run_pool(units, pool, in_flight, on_done, prepare)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_distributed(units: Iterator[Unit], client, in_flight: int, on_done) -> None:
    from distributed import as_completed

    scattered: dict[int, tuple[Shared, Any]] = {}

    def argument(arg):
        if not isinstance(arg, Shared):
            return arg
        if id(arg) not in scattered:
            if len(scattered) > 64:  # per-tile plans: keep only recent ones
                scattered.clear()
            scattered[id(arg)] = (arg, client.scatter(arg.value, hash=False))
        return scattered[id(arg)][1]

    running: dict = {}
    finished = as_completed(loop=client.loop)

    def submit() -> None:
        unit = next(units, None)
        if unit is not None:
            tag, function, args = unit
            future = client.submit(function, *map(argument, args), pure=False)
            running[future] = tag
            finished.add(future)

    try:
        for _ in range(in_flight):
            submit()
        for future in finished:
            result = future.result()  # raises the unit's error
            on_done(running.pop(future), result)
            submit()
    except BaseException:
        client.cancel(list(running))
        raise


def run_units(units: Iterator[Unit], scheduler, in_flight: int,
              on_done: Callable[[Any, Any], None]) -> None:
    """Run ``units`` at most ``in_flight`` at a time, calling ``on_done(tag, result)`` in the
    driver as each finishes (in completion order); a unit's error is raised after the units
    in flight are cancelled.

    ``scheduler``: ``"sync"`` (in this thread), ``"threads"`` (a pool of ``in_flight`` threads),
    ``"processes"`` (spawned workers that exit when this process dies) or a
    ``distributed.Client`` (a sliding window of futures).

    Example:
        >>> results = []
        >>> run_units(((i, abs, (-i,)) for i in range(3)), "threads", 2,
        ...           lambda tag, result: results.append(result))
        >>> sorted(results)
        [0, 1, 2]
    """
    units = iter(units)
    if is_client(scheduler):
        _run_distributed(units, scheduler, in_flight, on_done)
    elif scheduler == "processes":
        _run_processes(units, in_flight, on_done)
    elif scheduler in ("sync", "synchronous", "single-threaded"):
        for tag, function, args in units:
            on_done(tag, function(*_plain(args)))
    else:
        # One thread per unit in flight: units wait on storage (zarr's I/O loop) as much as
        # they compute, and numpy releases the GIL.
        with ThreadPoolExecutor(in_flight, thread_name_prefix="daskgp-job") as pool:
            _run_pool(units, pool, in_flight, on_done,
                      lambda function, args: (function, *_plain(args)))
