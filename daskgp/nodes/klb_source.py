"""``KlbSource``: gunpowder's reader of KLB files, kept only to refuse use with what to use
instead."""

from __future__ import annotations

from ..unsupported import Unsupported


class KlbSource(Unsupported):
    """gunpowder's ``KlbSource`` (Keller-lab block files through pyklb); daskgp refuses it on
    construction.

    daskgp does not depend on pyklb (published on PyPI only as a source package that compiles
    the KLB C++ library), and gunpowder's reader loads whole files or ROIs through it rather
    than a chunked store dask can read block-wise. Convert the files once (``pyklb.readfull``
    and ``zarr.save``, or Fiji's KLB reader and a zarr writer) and read them with
    ``ZarrSource``.

    Args:
        filename (str), array (ArrayKey), array_spec (ArraySpec, optional),
        num_threads (int): gunpowder's arguments; any call raises.

    Example:
        >>> KlbSource("stack_*.klb", None)
        Traceback (most recent call last):
        ...
        daskgp.errors.UnsupportedError: gunpowder's KlbSource is not provided by daskgp: ...
    """

    __daskgp_unsupported__ = (
        "it needs pyklb (a source-only build of the KLB C++ library, not a daskgp "
        "dependency) and KLB files are not a chunked store dask reads block-wise; convert "
        "them to zarr and use ZarrSource(store, {key: dataset})"
    )

    def __init__(self, filename, array, array_spec=None, num_threads=1) -> None:
        self.refuse()
