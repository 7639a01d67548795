"""verify: the tile checksums of a predict output are checked with the algorithm its record
names (crc32c now, crc32 for records an older daskgp wrote without a name); a resumed job keeps
its record's algorithm; an algorithm this daskgp does not know is refused, never called damage."""

import zlib

import numpy as np
import pytest
import zarr

import daskgp as gp
from daskgp.io import checksums
from daskgp.predict import COMPLETED_TILES, TILE_CHECKSUMS, predict
from daskgp.verify import verify


def run(zarr_model, out, **kwargs):
    return predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="threads",
                   progress=False, **kwargs)


def legacy_crc32(start, block) -> int:
    """The block checksum as daskgp wrote it before records named their algorithm."""
    position = np.asarray(tuple(start), dtype="<i8").tobytes()
    return zlib.crc32(np.ascontiguousarray(block).tobytes(), zlib.crc32(position))


def test_a_new_record_names_crc32c_and_verify_finds_changed_data(zarr_model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    run(zarr_model, out)
    record = zarr.open_array(out, path=COMPLETED_TILES, mode="r")
    assert record.attrs["checksum"] == "crc32c"
    report = verify(out)
    assert (report.checked, report.damaged) == (27, [])
    # Tile (0, 0, 0) owns voxels [0:8, 0:8, 0:8] of PRED (one chunk: the stride).
    pred = zarr.open_array(out, path="PRED", mode="r+")
    block = pred[0:8, 0:8, 0:8]
    stored = int(zarr.open_array(out, path=TILE_CHECKSUMS, mode="r")[0, 0])
    assert stored == checksums.block_checksum((0, 0, 0), block, "crc32c")
    assert stored != legacy_crc32((0, 0, 0), block)
    pred[1, 2, 3] = pred[1, 2, 3] + 1
    damaged = verify(out).damaged
    assert len(damaged) == 1 and damaged[0].startswith("tile (0, 0, 0) (#0)")


def test_a_legacy_crc32_record_verifies_and_resumes_with_crc32(zarr_model, tmp_path,
                                                               monkeypatch):
    # An output as an older daskgp left it: crc32 checksums, no algorithm in the record.
    out = str(tmp_path / "prediction.zarr")
    monkeypatch.setattr("daskgp.predict.default_checksum", lambda: "crc32")
    run(zarr_model, out, max_tiles=10)
    record = zarr.open_array(out, path=COMPLETED_TILES, mode="r+")
    attrs = dict(record.attrs)
    del attrs["checksum"]
    record.attrs.clear()
    record.attrs.update(attrs)
    monkeypatch.undo()
    pred = zarr.open_array(out, path="PRED", mode="r")
    stored = int(zarr.open_array(out, path=TILE_CHECKSUMS, mode="r")[0, 0])
    assert stored == legacy_crc32((0, 0, 0), pred[0:8, 0:8, 0:8])
    assert verify(out).damaged == []
    # The rerun continues with the record's algorithm: all 27 tiles check out as crc32.
    summary = run(zarr_model, out)
    assert (summary.written, summary.skipped) == (17, 10)
    assert "checksum" not in zarr.open_array(out, path=COMPLETED_TILES, mode="r").attrs
    report = verify(out)
    assert (report.checked, report.damaged) == (27, [])
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  zarr_model["expected"])


def test_an_unknown_algorithm_is_refused_by_verify_and_predict(zarr_model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    run(zarr_model, out, max_tiles=3)
    zarr.open_array(out, path=COMPLETED_TILES, mode="r+").attrs["checksum"] = "sha3-256"
    with pytest.raises(gp.PipelineSetupError, match=r"made with 'sha3-256', which this daskgp"):
        verify(out)
    with pytest.raises(gp.PipelineSetupError, match=r"prediction.zarr: .*'sha3-256'"):
        run(zarr_model, out)
    assert zarr.open_array(out, path=COMPLETED_TILES, mode="r")[:].sum() == 3


def test_checksums_with_sets_the_algorithm_of_block_checksums():
    block = np.arange(60, dtype=np.float32).reshape(3, 4, 5)[:, 1:, ::1]
    assert checksums.block_checksum((2, 0, 0), block, "crc32") == legacy_crc32((2, 0, 0), block)
    with checksums.checksums_with("crc32"):
        assert checksums.block_checksum((2, 0, 0), block) == legacy_crc32((2, 0, 0), block)
    crc32c = checksums.block_checksum((2, 0, 0), block, "crc32c")
    assert checksums.block_checksum((2, 0, 0), block) == crc32c  # the default again
    # The same value for the block as a contiguous copy, and a different one elsewhere.
    assert checksums.block_checksum((2, 0, 0), block.copy()) == crc32c
    assert checksums.block_checksum((2, 0, 1), block) != crc32c
