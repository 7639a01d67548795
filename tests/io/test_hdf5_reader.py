"""Hdf5Reader: picklable, one handle per process and file, reopened when the file changes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from dask.base import tokenize

from daskgp.errors import SourceError
from daskgp.io.hdf5_reader import Hdf5Reader
from tests.helpers import position_data
from tests.io.files import write_hdf5


def test_reads_metadata_and_values(tmp_path):
    data = position_data((10, 12, 14))
    path = write_hdf5(tmp_path / "sample.hdf", "volumes/raw", data, (4, 5, 6),
                      {"resolution": np.array([4, 2, 2]), "unit": b"nm"})
    write_hdf5(path, "volumes/contiguous", data)
    reader = Hdf5Reader(path, "volumes/raw")
    assert (reader.shape, reader.dtype, reader.chunks) == ((10, 12, 14), data.dtype, (4, 5, 6))
    assert reader.attrs == {"resolution": [4, 2, 2], "unit": "nm"}
    assert reader.parent_attrs == {}
    assert Hdf5Reader(path, "volumes/contiguous").chunks is None
    selection = (slice(2, 3), slice(4, 12), slice(0, 14))
    np.testing.assert_array_equal(reader.read(selection), data[selection])
    reader.close()


def test_pickles_and_reopens_a_rewritten_file(tmp_path):
    path = write_hdf5(tmp_path / "sample.hdf", "raw", np.zeros((4, 4), np.uint8))
    reader = pickle.loads(pickle.dumps(Hdf5Reader(path, "raw")))
    assert reader.read((slice(0, 4), slice(0, 4))).sum() == 0
    assert tokenize(reader) == tokenize(Hdf5Reader(path, "raw"))
    reader.close()  # lets us rewrite the file in this process
    write_hdf5(path, "raw", np.ones((4, 4), np.uint8), mode="w")
    assert reader.read((slice(0, 4), slice(0, 4))).sum() == 16
    reader.close()


def test_a_stale_handle_is_replaced(tmp_path):
    first = write_hdf5(tmp_path / "a.hdf", "raw", np.zeros((2, 2), np.uint8))
    reader = Hdf5Reader(first, "raw")
    assert reader.read((slice(0, 2), slice(0, 2))).sum() == 0
    # Replace the file by another one (new inode) while the old handle is still open.
    replacement = write_hdf5(tmp_path / "b.hdf", "raw", np.full((2, 2), 3, np.uint8))
    (tmp_path / "b.hdf").replace(first)
    assert replacement != first
    assert reader.read((slice(0, 2), slice(0, 2))).sum() == 12
    reader.close()


def test_missing_file_and_dataset(tmp_path):
    with pytest.raises(SourceError, match=r"nowhere.hdf does not exist.*'raw'"):
        Hdf5Reader(tmp_path / "nowhere.hdf", "raw").open()
    path = write_hdf5(tmp_path / "sample.hdf", "volumes/raw", np.zeros((2, 2)))
    with pytest.raises(SourceError, match=r"'volumes/gt' does not exist.*sample.hdf"):
        Hdf5Reader(path, "volumes/gt").open()
    Hdf5Reader(path, "volumes/raw").close()
