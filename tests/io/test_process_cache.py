"""The per-process handle cache: open once, reopen on a new signature, close on request."""

from __future__ import annotations

from daskgp.io.process_cache import ProcessCache


def test_open_once_reopen_on_new_signature_and_close():
    closed, opened = [], []

    def opener(name):
        def open_():
            opened.append(name)
            return name
        return open_

    cache = ProcessCache(close=closed.append)
    assert cache.get("file", opener("v1"), signature=1) == "v1"
    assert cache.get("file", opener("v2"), signature=1) == "v1"
    assert cache.get("file", opener("v3"), signature=2) == "v3"
    assert closed == ["v1"] and opened == ["v1", "v3"]
    cache.close("file")
    cache.close("file")  # closing twice is harmless
    assert closed == ["v1", "v3"]
    assert cache.get("file", opener("v4"), signature=2) == "v4"
