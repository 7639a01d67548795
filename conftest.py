"""Names available to the doctests in daskgp's docstrings."""

import numpy as np
import pytest

import daskgp as gp


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(
        np=np, gp=gp, Roi=gp.Roi, Coordinate=gp.Coordinate, ArrayKey=gp.ArrayKey,
        ArraySpec=gp.ArraySpec, Array=gp.Array, Batch=gp.Batch,
    )
