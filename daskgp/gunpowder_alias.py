"""Let libraries that ``import gunpowder`` themselves run on daskgp.

Third-party gunpowder nodes (funkelab/lsd's ``AddLocalShapeDescriptor``, funlib's helpers)
import gunpowder inside their own modules, so a user's ``import daskgp as gp`` does not reach
them. ``register_as_gunpowder`` puts daskgp in ``sys.modules`` under gunpowder's public module
names, so that those imports resolve to daskgp's classes and the nodes run unchanged.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

#: gunpowder's public modules and the daskgp modules that stand for them.
MODULES = {
    "gunpowder": "daskgp",
    "gunpowder.nodes": "daskgp.nodes",
    "gunpowder.tensorflow": "daskgp.tensorflow",
    "gunpowder.torch": "daskgp.torch",
}


def register_as_gunpowder() -> Callable[[], None]:
    """Make ``import gunpowder`` (and ``gunpowder.nodes``, ``.tensorflow``, ``.torch``) give
    daskgp, for code that imports gunpowder itself. Call it before importing that code.

    Returns a function that removes the names it added. Raises ``ImportError`` if the real
    gunpowder is already imported in this process: its classes and daskgp's do not mix.

    Example:
        >>> undo = register_as_gunpowder()
        >>> import gunpowder
        >>> gunpowder.BatchFilter.__module__
        'daskgp.provider'
        >>> undo()  # removes the names this call added
    """
    added = []
    for name, target in MODULES.items():
        module = importlib.import_module(target)
        present = sys.modules.get(name)
        if present is module:
            continue
        if present is not None:
            raise ImportError(
                f"register_as_gunpowder: {name} is already imported from "
                f"{getattr(present, '__file__', present)!r} (the real gunpowder); call it "
                "before anything imports gunpowder, in a process without it")
        sys.modules[name] = module
        added.append(name)

    def undo() -> None:
        for name in added:
            sys.modules.pop(name, None)

    return undo
