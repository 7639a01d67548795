"""``LocalServer``: gunpowder's TF1 ``tf.train.Server`` wrapper, kept only to refuse use with
what to use instead."""

from __future__ import annotations

from ..unsupported import Unsupported


class LocalServer(Unsupported):
    """gunpowder's ``LocalServer`` (a TF1 ``tf.train.Server`` whose target a ``tf.Session``
    connects to); daskgp refuses it on construction and in ``get_target``.

    TF2 has no sessions or graph servers: daskgp's ``tensorflow.Train``/``Predict`` run a Keras
    model eagerly (``tf.function``) in the process that trains, so there is nothing to connect
    to. Pass the model to ``tensorflow.Train(model=..., loss=..., optimizer=...)``.

    Example:
        >>> LocalServer.get_target()
        Traceback (most recent call last):
        ...
        daskgp.errors.UnsupportedError: gunpowder's LocalServer is not provided by daskgp: ...
    """

    __daskgp_unsupported__ = (
        "TF2 has no sessions or graph servers to connect to; daskgp's tensorflow.Train and "
        "Predict run a Keras model in their own process: pass model=, loss=, optimizer= "
        "(see docs/gunpowder.md)"
    )

    def __init__(self) -> None:
        self.refuse()

    @staticmethod
    def get_target():
        """Refused (see the class)."""
        LocalServer.refuse()
