"""Worker processes that die with their parent: no orphans after the driver is killed.

``init_worker`` is the initializer of every process pool daskgp starts: on Linux the kernel
sends SIGKILL to the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a
daemon thread also checks once a second that the parent is still there.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1
CHECK_INTERVAL_S = 1.0


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died: this worker's results have nowhere to go
        threading.Event().wait(CHECK_INTERVAL_S)


def init_worker(parent_pid: int) -> None:
    """Initializer of a pool's worker processes: exit when process ``parent_pid`` dies.

    Example:
        >>> from concurrent.futures import ProcessPoolExecutor
        >>> pool = ProcessPoolExecutor(2, initializer=init_worker,  # doctest: +SKIP
        ...                            initargs=(os.getpid(),))
    """
    if os.getppid() != parent_pid:  # died before this worker got here
        os._exit(1)
    _set_parent_death_signal()
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="daskgp-parent-watch").start()


def pool_options() -> dict:
    """``initializer`` and ``initargs`` for a ``ProcessPoolExecutor`` started here."""
    return {"initializer": init_worker, "initargs": (os.getpid(),)}
