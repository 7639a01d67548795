"""gunpowder names daskgp does not provide: each is a class with gunpowder's signature whose
use raises an ``UnsupportedError`` that says what to use instead and why."""

from __future__ import annotations

from .errors import UnsupportedError


class Unsupported:
    """Base of the classes that refuse use. A subclass sets ``__daskgp_unsupported__`` (why,
    and what to use instead; the compatibility table shows it) and calls ``refuse`` from an
    ``__init__`` with gunpowder's signature.

    Example:
        >>> class Old(Unsupported):
        ...     __daskgp_unsupported__ = "needs X; use Y"
        ...     def __init__(self, a, b=1):
        ...         self.refuse()
        >>> Old(1)
        Traceback (most recent call last):
        ...
        daskgp.errors.UnsupportedError: gunpowder's Old is not provided by daskgp: needs X; use Y
    """

    __daskgp_unsupported__ = ""

    @classmethod
    def refuse(cls) -> None:
        """Raise the ``UnsupportedError`` that names this class and the alternative."""
        raise UnsupportedError(
            f"gunpowder's {cls.__name__} is not provided by daskgp: "
            f"{cls.__daskgp_unsupported__}"
        )
