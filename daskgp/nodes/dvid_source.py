"""``DvidSource``: gunpowder's reader of a DVID server, kept only to refuse use with what to
use instead."""

from __future__ import annotations

from ..unsupported import Unsupported


class DvidSource(Unsupported):
    """gunpowder's ``DvidSource`` (a DVID server's arrays over HTTP through libdvid); daskgp
    refuses it on construction.

    DVID serves blocks through a server and libdvid, which cannot be reached from dask workers
    as a chunked store and is not packaged for this Python. Fetch the volume with a DVID
    client (e.g. ``neuclease``), write it to zarr and read it with ``ZarrSource``, whose
    chunks dask reads in parallel.

    Args:
        hostname (str), port (int), uuid (str), datasets (dict), masks (dict, optional),
        array_specs (dict, optional): gunpowder's arguments; any call raises.

    Example:
        >>> DvidSource("localhost", 8000, "a1b2", {})
        Traceback (most recent call last):
        ...
        daskgp.errors.UnsupportedError: gunpowder's DvidSource is not provided by daskgp: ...
    """

    __daskgp_unsupported__ = (
        "it needs a DVID server and libdvid, which dask workers cannot read as a chunked "
        "store; export the volume to zarr (daskgp reads no N5) and use "
        "ZarrSource(store, datasets, array_specs)"
    )

    def __init__(self, hostname, port, uuid, datasets, masks=None, array_specs=None) -> None:
        self.refuse()
