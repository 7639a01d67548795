"""Worker processes that die with their parent: no orphans after the driver is killed.

``init_worker`` is the initializer of every process pool daskgp starts: a daemon thread in each
worker checks once a second that its parent process is still there, and exits when it is not.
(Not ``prctl(PR_SET_PDEATHSIG)``: Linux sends that signal when the *thread* that started the
worker ends, and pools are driven from background threads, e.g. ``PreCache``'s.)
"""

from __future__ import annotations

import os
import threading

CHECK_INTERVAL_S = 1.0


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
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="daskgp-parent-watch").start()


def pool_options() -> dict:
    """``initializer`` and ``initargs`` for a ``ProcessPoolExecutor`` started here."""
    return {"initializer": init_worker, "initargs": (os.getpid(),)}
