"""Keys that name arrays (and graphs) in requests and batches, as in gunpowder.

``ArrayKey("RAW")`` also registers itself as ``ArrayKeys.RAW``.
"""

from __future__ import annotations


class _KeyNamespace:
    """Attribute access to all keys created so far (``ArrayKeys.RAW``)."""

    def __init__(self, kind: str) -> None:
        self._kind = kind

    def __getattr__(self, name: str):
        raise AttributeError(f"no {self._kind} named {name!r} has been created")


ArrayKeys = _KeyNamespace("ArrayKey")
GraphKeys = _KeyNamespace("GraphKey")


class _Key:
    _namespace: _KeyNamespace

    def __init__(self, identifier: str) -> None:
        if not isinstance(identifier, str) or not identifier:
            raise TypeError(f"a key's identifier must be a non-empty string, got {identifier!r}")
        self.identifier = identifier
        self.hash = hash((type(self).__name__, identifier))
        setattr(self._namespace, identifier, self)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.identifier == other.identifier

    def __hash__(self) -> int:
        return self.hash

    def __lt__(self, other: _Key) -> bool:
        return self.identifier < other.identifier

    def __repr__(self) -> str:
        return self.identifier

    def __reduce__(self):
        return (type(self), (self.identifier,))

    def __dask_tokenize__(self):
        return (type(self).__name__, self.identifier)


class ArrayKey(_Key):
    """Names an array in requests and batches.

    Example:
        >>> raw = ArrayKey("RAW")
        >>> raw is not None and ArrayKeys.RAW == raw
        True
    """

    _namespace = ArrayKeys


class GraphKey(_Key):
    """Names a graph (points and edges) in requests and batches.

    Example:
        >>> points = GraphKey("POINTS")
        >>> GraphKeys.POINTS == points
        True
    """

    _namespace = GraphKeys
