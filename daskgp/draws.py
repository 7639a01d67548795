"""Which nodes draw random parameters while a request is planned: what tells ``daskgp predict``
whether one tile's plan, shifted, is every tile's plan (translation-equivariant)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_recorder: contextvars.ContextVar = contextvars.ContextVar("daskgp_draws", default=None)


def note_draw(node_name: str) -> None:
    """Record that node ``node_name`` drew from its ``rng`` (a no-op unless recording)."""
    names = _recorder.get()
    if names is not None:
        names.append(node_name)


@contextlib.contextmanager
def recording_draws() -> Iterator[list[str]]:
    """Collect the names of the nodes that draw from ``rng`` while the block runs.

    Example:
        >>> with recording_draws() as names:
        ...     note_draw("RandomLocation")
        >>> names
        ['RandomLocation']
    """
    names: list[str] = []
    token = _recorder.set(names)
    try:
        yield names
    finally:
        _recorder.reset(token)
