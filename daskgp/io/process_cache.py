"""A per-process cache of open files and arrays, so each worker opens a dataset once.

Entries are keyed by ``os.getpid()`` as well: a forked child never reuses its parent's handles.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any


class ProcessCache:
    """Open-once handles, shared by every reader in this process that names the same file.

    ``get(key, open_)`` returns the cached handle for ``key`` or stores ``open_()``; a
    ``signature`` (e.g. the file's inode and mtime) that changed since the handle was opened
    reopens it, so a rewritten file is never read through a stale handle.

    Example:
        >>> cache = ProcessCache()
        >>> cache.get("a", lambda: [1])
        [1]
        >>> cache.get("a", lambda: [2])  # cached
        [1]
    """

    def __init__(self, close: Callable[[Any], None] | None = None) -> None:
        self._close = close
        self._entries: dict[tuple, tuple[Hashable, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, open_: Callable[[], Any], signature: Hashable = None) -> Any:
        """The handle for ``key`` in this process, opened with ``open_()`` on first use."""
        full_key = (os.getpid(), key)
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and entry[0] == signature:
                return entry[1]
            if entry is not None:
                self._close_handle(entry[1])
            handle = open_()
            self._entries[full_key] = (signature, handle)
            return handle

    def close(self, key: Hashable) -> None:
        """Forget (and close) the handle for ``key`` in this process, if any."""
        with self._lock:
            entry = self._entries.pop((os.getpid(), key), None)
        if entry is not None:
            self._close_handle(entry[1])

    def _close_handle(self, handle: Any) -> None:
        if self._close is not None:
            self._close(handle)
