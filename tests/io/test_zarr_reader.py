"""ZarrReader: picklable, opened once per process, formats 2 and 3, clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from dask.base import tokenize

from daskgp.errors import SourceError
from daskgp.io.zarr_reader import ZarrReader
from tests.helpers import position_data
from tests.io.files import write_zarr


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_reads_metadata_and_values(tmp_path, zarr_format):
    data = position_data((10, 12, 14))
    path = write_zarr(tmp_path / "sample.zarr", "volumes/raw", data, (4, 5, 6), zarr_format,
                      attrs={"resolution": [4, 2, 2]}, group_attrs={"note": "group"})
    reader = ZarrReader(path, "/volumes/raw/")
    assert reader.dataset == "volumes/raw"
    assert (reader.shape, reader.dtype, reader.chunks) == ((10, 12, 14), data.dtype, (4, 5, 6))
    assert reader.attrs == {"resolution": [4, 2, 2]}
    assert reader.parent_attrs == {"note": "group"}
    selection = (slice(1, 9), slice(0, 12), slice(5, 6))
    np.testing.assert_array_equal(reader.read(selection), data[selection])


def test_pickles_without_its_array_and_shares_one_per_process(tmp_path, monkeypatch):
    data = position_data((6, 6, 6))
    path = write_zarr(tmp_path / "sample.zarr", "raw", data, (3, 3, 3))
    monkeypatch.chdir(tmp_path)
    reader = ZarrReader("sample.zarr", "raw")  # relative paths are made absolute
    assert reader.store == path
    reader.open()
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.__dict__["_array"] is None
    assert copy.open() is reader.open()  # the process cache: one array per (store, dataset)
    np.testing.assert_array_equal(copy.read((slice(0, 6),) * 3), data)
    assert tokenize(copy) == tokenize(reader) == tokenize(ZarrReader(path, "raw"))
    assert tokenize(ZarrReader(path, "other")) != tokenize(reader)


def test_missing_store_and_dataset(tmp_path):
    with pytest.raises(SourceError, match=r"nowhere.zarr does not exist.*'raw'"):
        ZarrReader(tmp_path / "nowhere.zarr", "raw").open()
    path = write_zarr(tmp_path / "sample.zarr", "volumes/raw", position_data((4, 4, 4)),
                      (2, 2, 2))
    with pytest.raises(SourceError, match=r"'volumes/gt' is not an array.*sample.zarr"):
        ZarrReader(path, "volumes/gt").open()
