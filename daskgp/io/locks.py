"""Exclusive output locks of ``daskgp predict``/``precompute``: one job writes an output at once.

The lock is a JSON record in the output (job identity, host, pid, heartbeat) made by an atomic
create; a record whose process is gone is stale and taken over, anything else is refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

from ..errors import DaskgpError

logger = logging.getLogger(__name__)

#: The lock record's file name inside the output folder.
LOCK_FILE = ".daskgp-job.lock"
#: Seconds between heartbeats of a running job.
HEARTBEAT_S = 10.0


class OutputLockedError(DaskgpError):
    """Another job holds the output's lock; the message names it (host, pid, command)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds an output: the job's identity, host, pid, start time of the process, command,
    when the job started and its last heartbeat (seconds since the epoch)."""

    job: str
    host: str
    pid: int
    process_start: float | None
    command: str
    started: float
    heartbeat: float

    def describe(self) -> str:
        """One line naming the holder, for error messages."""
        age = time.time() - self.heartbeat
        return (f"pid {self.pid} on host {self.host} (`{self.command}`, job {self.job[:12]}, "
                f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}, "
                f"last heartbeat {age:.0f} s ago)")

    def alive(self) -> bool | None:
        """True/False when the holder runs on this host (its pid and start time are checked);
        None on another host, where only its heartbeat tells."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        start = _process_start(self.pid)
        return start is None or self.process_start is None or abs(start - self.process_start) < 1


def _process_start(pid: int) -> float | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def read_lock(path: str) -> LockHolder | None:
    """The holder recorded in output ``path``, or None when it is not locked."""
    try:
        with open(os.path.join(path, LOCK_FILE)) as record:
            return LockHolder(**json.load(record))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:  # a record cut short while it was written
        return LockHolder(job="?", host="?", pid=-1, process_start=None,
                          command=f"unreadable lock record ({error})", started=0, heartbeat=0)


class OutputLock:
    """The exclusive lock of a job on output folder ``path`` (created if missing).

    ``acquire`` creates ``path/.daskgp-job.lock`` atomically (``O_CREAT | O_EXCL``) with the
    job's identity, host and pid; a thread rewrites its heartbeat every 10 s. A record left by
    a dead process of this host is stale: it is replaced, with a warning. A record of a live
    process, or of another host (whose liveness this host cannot check), raises
    ``OutputLockedError`` naming the holder; ``force=True`` takes it anyway, for a holder the
    user knows is dead. ``release`` removes the record (and the folder, if the job created it
    and left nothing else in it).

    Args:
        path (str): the output folder (local paths only; URLs are not locked).
        job (str): the job's identity token.
        command (str): what runs, for the holder's description.

    Example:
        >>> lock = OutputLock("prediction.zarr", job="abc", command="daskgp predict")
        >>> with lock.acquire():  # doctest: +SKIP
        ...     pass  # write the output
    """

    def __init__(self, path: str, job: str, command: str) -> None:
        self.path = path
        self.job = job
        self.command = command
        self._created_folder = False
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def record(self) -> str:
        """The lock record's path."""
        return os.path.join(self.path, LOCK_FILE)

    def _holder(self) -> LockHolder:
        now = time.time()
        return LockHolder(job=self.job, host=socket.gethostname(), pid=os.getpid(),
                          process_start=_process_start(os.getpid()), command=self.command,
                          started=now, heartbeat=now)

    def acquire(self, force: bool = False) -> OutputLock:
        """Take the lock, or raise ``OutputLockedError`` naming its holder."""
        if "://" in self.path:
            logger.warning("%s: outputs at URLs are not locked; run one job at a time on it",
                           self.path)
            return self
        if not os.path.exists(self.path):
            os.makedirs(self.path, exist_ok=True)
            self._created_folder = True
        for _ in range(3):
            try:
                descriptor = os.open(self.record, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                if holder is None:
                    continue  # released meanwhile
                alive = holder.alive()
                if alive is False:
                    logger.warning("%s: taking over the stale lock of %s, which is not running",
                                   self.path, holder.describe())
                elif not force:
                    self._cleanup_folder()
                    hint = ("" if alive else "; it runs on another host: if you know it is "
                            "dead, rerun with --force (force=True) to take the lock")
                    raise OutputLockedError(
                        f"{self.path} is locked by another job: {holder.describe()}; nothing "
                        f"was written{hint}"
                    ) from None
                else:
                    logger.warning("%s: forced to take the lock of %s", self.path,
                                   holder.describe())
                with open(self.record, "w") as record:  # replace the stale record
                    json.dump(asdict(self._holder()), record)
                break
            with os.fdopen(descriptor, "w") as record:
                json.dump(asdict(self._holder()), record)
            break
        else:  # pragma: no cover - three races in a row
            raise OutputLockedError(f"{self.path}: could not take the lock")
        self._held = True
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"daskgp-lock-{os.path.basename(self.path)}")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            holder = read_lock(self.path)
            if holder is None or (holder.pid, holder.host) != (os.getpid(), socket.gethostname()):
                logger.warning("%s: this job's lock was taken by %s", self.path,
                               holder.describe() if holder else "nobody (removed)")
                return
            temporary = f"{self.record}.{os.getpid()}"
            with open(temporary, "w") as record:
                json.dump({**asdict(holder), "heartbeat": time.time()}, record)
            os.replace(temporary, self.record)

    def release(self) -> None:
        """Remove the record (if this job still holds it) and stop the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._held:
            holder = read_lock(self.path)
            if holder is not None and holder.pid == os.getpid():
                os.remove(self.record)
            self._held = False
        self._cleanup_folder()

    def _cleanup_folder(self) -> None:
        if self._created_folder and os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
