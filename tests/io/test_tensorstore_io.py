"""The TensorStore fast path of zarr reads and writes: the same values and the same stored
chunks as zarr-python, and zarr-python wherever TensorStore would mean something else."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from numcodecs import Delta

from daskgp.io import tensorstore_io
from daskgp.io.array_writer import ZarrArrayWriter
from daskgp.io.zarr_reader import ZarrReader
from tests.helpers import position_data


def chunk_files(path) -> set[str]:
    """The chunk files of an array (relative paths, metadata left out)."""
    found = set()
    for folder, _, names in os.walk(path):
        for name in names:
            if name not in (".zarray", ".zattrs", "zarr.json"):
                found.add(os.path.relpath(os.path.join(folder, name), path))
    return found


def make_array(path, zarr_format, compressors="auto", dtype="float32", shape=(12, 10, 9)):
    return zarr.create_array(str(path), name="pred", shape=shape, chunks=(4, 5, 3),
                             dtype=dtype, zarr_format=zarr_format, compressors=compressors,
                             fill_value=0)


BLOCKS = [  # (selection, value): whole chunks, a partial edge, a chunk of fill values, a cast
    ((slice(0, 4), slice(0, 5), slice(0, 3)), "data"),
    ((slice(4, 8), slice(5, 10), slice(6, 9)), "data"),
    ((slice(8, 12), slice(0, 5), slice(3, 5)), "data"),
    ((slice(0, 4), slice(5, 10), slice(3, 6)), 0.0),
    ((slice(8, 12), slice(5, 10), slice(0, 3)), 2.5),
]


def write_blocks(writer, data):
    for selection, value in BLOCKS:
        writer[selection] = data[selection] if isinstance(value, str) else value


@pytest.mark.parametrize("zarr_format,compressors", [(2, "auto"), (2, "zstd"), (2, "gzip"),
                                                     (2, "blosc"), (3, "auto"), (3, None)])
def test_writes_and_reads_equal_zarr_pythons(tmp_path, monkeypatch, zarr_format, compressors):
    if compressors in ("zstd", "gzip", "blosc"):
        from numcodecs import GZip, Zstd
        from numcodecs.blosc import Blosc

        compressors = {"zstd": Zstd(3), "gzip": GZip(5), "blosc": Blosc()}[compressors]
    data = position_data((12, 10, 9)).astype(np.float32) / 7
    fast_path, slow_path = tmp_path / "fast.zarr", tmp_path / "slow.zarr"
    make_array(fast_path, zarr_format, compressors)
    make_array(slow_path, zarr_format, compressors)
    fast = ZarrArrayWriter(fast_path, "pred")
    write_blocks(fast, data)
    assert fast._fast is not None, "TensorStore opens this array"
    monkeypatch.setenv("DASKGP_ZARR_IO", "zarr")
    slow = ZarrArrayWriter(slow_path, "pred")
    write_blocks(slow, data)
    assert slow._fast is None
    monkeypatch.delenv("DASKGP_ZARR_IO")

    written = zarr.open_array(str(fast_path), path="pred", mode="r")[...]
    np.testing.assert_array_equal(written, zarr.open_array(str(slow_path), path="pred")[...])
    assert written[8:12, 5:10, 0:3].tolist() == np.full((4, 5, 3), 2.5).tolist()
    # The same chunks are stored: the all-fill chunk is not (zarr's write_empty_chunks=False).
    assert chunk_files(fast_path / "pred") == chunk_files(slow_path / "pred")

    reader = ZarrReader(str(fast_path), "pred")
    selection = (slice(1, 11), slice(2, 9), slice(0, 9))
    np.testing.assert_array_equal(reader.read(selection), written[selection])
    assert tensorstore_io.open_local(str(fast_path), "pred", reader.open()) is not None


def test_selections_zarr_python_reads_differently_are_left_to_it(tmp_path):
    make_array(tmp_path / "a.zarr", 2)[...] = position_data((12, 10, 9)).astype(np.float32)
    reader = ZarrReader(str(tmp_path / "a.zarr"), "pred")
    whole = zarr.open_array(str(tmp_path / "a.zarr"), path="pred")[...]
    # Negative and clipped bounds are numpy's in zarr-python, out of bounds in TensorStore.
    for selection in [(slice(-4, None), slice(0, 10), slice(0, 9)),
                      (slice(0, 100), slice(3, 4), slice(None)),
                      (slice(0, 12, 2), slice(0, 10), slice(0, 9))]:
        assert not tensorstore_io.plain(selection, whole.shape)
        np.testing.assert_array_equal(reader.read(selection), whole[selection])
    assert tensorstore_io.plain((slice(None), slice(0, 10), slice(9, 9)), whole.shape)


def test_arrays_tensorstore_cannot_open_use_zarr_python(tmp_path, monkeypatch):
    data = position_data((12, 10, 9))
    filtered = zarr.create_array(str(tmp_path / "f.zarr"), name="pred", shape=data.shape,
                                 chunks=(4, 5, 3), dtype=data.dtype, zarr_format=2,
                                 filters=[Delta(dtype=data.dtype)])
    filtered[...] = data
    assert tensorstore_io.open_local(str(tmp_path / "f.zarr"), "pred", filtered) is None
    writer = ZarrArrayWriter(tmp_path / "f.zarr", "pred")
    writer[0:4, 0:5, 0:3] = np.zeros((4, 5, 3), data.dtype)
    assert writer._fast is None
    expected = data.copy()
    expected[0:4, 0:5, 0:3] = 0
    np.testing.assert_array_equal(ZarrReader(str(tmp_path / "f.zarr"), "pred").read(
        (slice(0, 12), slice(0, 10), slice(0, 9))), expected)
    # In-memory stores and the switch: zarr-python.
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), dtype="i4")
    assert tensorstore_io.open_local(zarr.storage.MemoryStore(), "", memory) is None
    plain = make_array(tmp_path / "p.zarr", 2)
    assert tensorstore_io.open_local(str(tmp_path / "p.zarr"), "pred", plain) is not None
    monkeypatch.setenv("DASKGP_ZARR_IO", "zarr")
    assert tensorstore_io.open_local(str(tmp_path / "p.zarr"), "pred", plain) is None


def test_integer_arrays_cast_as_zarr_python_does(tmp_path, monkeypatch):
    values = np.linspace(-3.7, 300.2, 60).reshape(4, 5, 3)
    outputs = []
    for name, io in (("fast", ""), ("slow", "zarr")):
        monkeypatch.setenv("DASKGP_ZARR_IO", io)
        make_array(tmp_path / f"{name}.zarr", 2, dtype="uint8")
        writer = ZarrArrayWriter(tmp_path / f"{name}.zarr", "pred")
        writer[0:4, 0:5, 0:3] = values
        outputs.append(zarr.open_array(str(tmp_path / f"{name}.zarr"), path="pred")[0:4, 0:5,
                                                                                   0:3])
    np.testing.assert_array_equal(*outputs)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_cached_reads_see_rewritten_corrupted_and_deleted_chunks(tmp_path, zarr_format,
                                                                 monkeypatch):
    # With the read cache on, reads keep decoded chunks, revalidated at every read.
    monkeypatch.setenv("DASKGP_ZARR_READ_CACHE", str(64 << 20))
    array = make_array(tmp_path / "data.zarr", zarr_format, dtype="uint8")
    array[:] = 1
    reader = ZarrReader(str(tmp_path / "data.zarr"), "pred")
    everything = (slice(0, 12), slice(0, 10), slice(0, 9))
    assert reader.read(everything).sum() == 12 * 10 * 9
    # TensorStore reads it, through the cached context (writes have their own, uncached).
    assert tensorstore_io.open_local(str(tmp_path / "data.zarr"), "pred", array) is not None
    assert tensorstore_io._context(write=False) is not tensorstore_io._context(write=True)
    array[0:4, 0:5, 0:3] = 7  # the same chunk file rewritten at once, same size
    data = reader.read(everything)
    assert data[0, 0, 0] == 7 and data.sum() == 12 * 10 * 9 + 6 * 4 * 5 * 3
    key = "0.0.0" if zarr_format == 2 else os.path.join("c", "0", "0", "0")
    chunk = tmp_path / "data.zarr" / "pred" / key
    chunk.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"Error reading .*" + key.replace(os.sep, ".")):
        reader.read((slice(0, 4), slice(0, 5), slice(0, 3)))
    chunk.unlink()  # a missing chunk reads as the fill value, as zarr-python reads it
    assert reader.read((slice(0, 4), slice(0, 5), slice(0, 3))).sum() == 0
    assert reader.read(everything).sum() == 12 * 10 * 9 - 4 * 5 * 3
