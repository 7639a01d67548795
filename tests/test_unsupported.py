"""gunpowder names daskgp refuses: gunpowder's signature, and an error naming the alternative."""

from __future__ import annotations

import inspect

import pytest

import daskgp as gp


@pytest.mark.parametrize(("call", "alternative"), [
    (lambda: gp.DvidSource("localhost", 8000, "a1b2", {gp.ArrayKey("RAW"): "grayscale"}),
     "ZarrSource"),
    (lambda: gp.nodes.KlbSource("stack_*.klb", gp.ArrayKey("RAW")), "ZarrSource"),
    (lambda: gp.ProducerPool([lambda: 1], queue_size=4), "PreCache(num_workers=...)"),
    (lambda: gp.tensorflow.LocalServer(), "model=, loss=, optimizer="),
    (lambda: gp.tensorflow.LocalServer.get_target(), "model=, loss=, optimizer="),
])
def test_use_raises_with_the_alternative_and_why(call, alternative):
    with pytest.raises(gp.UnsupportedError, match="is not provided by daskgp") as info:
        call()
    assert alternative in str(info.value)
    assert isinstance(info.value, gp.DaskgpError)


def test_refused_names_keep_gunpowders_signatures():
    assert list(inspect.signature(gp.DvidSource).parameters) == [
        "hostname", "port", "uuid", "datasets", "masks", "array_specs"]
    assert list(inspect.signature(gp.KlbSource).parameters) == [
        "filename", "array", "array_spec", "num_threads"]
    assert inspect.signature(gp.ProducerPool).parameters["queue_size"].default == 10
    with pytest.raises(TypeError):
        gp.DvidSource("localhost")  # a wrong call is still a TypeError, as in gunpowder
