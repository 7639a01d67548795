"""predict: a scanned prediction written to zarr equals the whole-volume reference, on every
scheduler; a rerun rewrites only the tiles not yet marked complete."""

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

import daskgp as gp
from daskgp.cli import load_pipeline_file
from daskgp.predict import COMPLETED_TILES, TILE_CHECKSUMS, predict

from .conftest import ZARR_PIPELINE_FILE

PIPELINE_FILE = Path(__file__).parent / "data" / "predict_pipeline.py"
PRED = gp.ArrayKey("PRED")
RAW = gp.ArrayKey("RAW")


@pytest.fixture
def model(monkeypatch, tmp_path):
    """The predict pipeline file's names, its model logging each block to ``log``, and the
    whole-volume reference prediction (the valid part of one convolution of the volume)."""
    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.setenv("DASKGP_TEST_LOG", str(tmp_path / "log"))
    found = load_pipeline_file(PIPELINE_FILE)
    namespace = load_pipeline_file(PIPELINE_FILE, names=("raw", "kernel", "OFFSET"))
    expected = ndimage.convolve(namespace["raw"], namespace["kernel"], mode="constant")
    found["expected"] = expected[1:-1, 2:-2, 1:-1]
    found["log"] = tmp_path / "log"
    return found


def blocks_computed(log):
    if not log.exists():
        return 0
    return len(log.read_text().splitlines())


def file_states(path):
    """(mtime_ns, bytes) of every file under ``path``."""
    states = {}
    for folder, _, names in os.walk(path):
        for name in names:
            file = os.path.join(folder, name)
            with open(file, "rb") as content:
                states[file] = (os.stat(file).st_mtime_ns, content.read())
    return states


def is_record(out, file):
    return os.path.relpath(file, out).split(os.sep)[0] in (COMPLETED_TILES, TILE_CHECKSUMS)


def test_scanned_prediction_equals_the_whole_volume_reference(model, tmp_path, scheduler):
    out = str(tmp_path / "prediction.zarr")
    client = scheduler if not isinstance(scheduler, str) else None
    summary = predict(model["pipeline"], model["request"], out,
                      scheduler=None if client else scheduler, client=client, progress=False)
    assert (summary.num_tiles, summary.written, summary.skipped) == (27, 27, 0)
    pred = zarr.open_array(out, path="PRED", mode="r")
    # 20 x 23 x 23 voxels in tiles of 8: the last tiles along every axis are clamped.
    assert pred.shape == (20, 23, 23) and pred.chunks == (8, 8, 8)
    assert pred.attrs["resolution"] == [2, 1, 1] and pred.attrs["offset"] == [12, -1, 1]
    np.testing.assert_array_equal(pred[:], model["expected"])
    assert zarr.open_array(out, path=COMPLETED_TILES, mode="r")[:].all()
    if isinstance(scheduler, str):  # the log file is only shared with local workers
        assert blocks_computed(model["log"]) == 27, "one model block per tile"


def test_roi_and_named_outputs(model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    roi = gp.Roi((20, 3, 5), (20, 10, 12))  # voxels 5:15, 6:16, 5:17 of the volume
    summary = predict(model["pipeline"], model["request"], out, outputs={PRED: "volumes/pred"},
                      roi=roi, scheduler="threads", progress=False)
    assert summary.num_tiles == 8
    pred = zarr.open_array(out, path="volumes/pred", mode="r")
    assert pred.attrs["offset"] == [20, 3, 5]
    np.testing.assert_array_equal(pred[:], model["expected"][4:14, 4:14, 4:16])


def test_rerun_computes_and_writes_only_unfinished_tiles(model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    predict(model["pipeline"], model["request"], out, scheduler="threads", progress=False)
    # Tiles 3 = (0, 1, 0) and 26 = (2, 2, 2) as a killed run leaves them: garbage, unmarked.
    pred = zarr.open_array(out, path="PRED", mode="r+")
    pred[0:8, 8:16, 0:8] = -1
    pred[16:20, 16:23, 16:23] = -1
    zarr.open_array(out, path=COMPLETED_TILES, mode="r+")[[3, 26]] = 0
    unfinished = {os.path.join(out, "PRED", "0.1.0"), os.path.join(out, "PRED", "2.2.2")}
    # The record's chunks (marks of many tiles each) are rewritten when tiles are marked.
    before = {f: s for f, s in file_states(out).items()
              if f not in unfinished and not is_record(out, f)}
    model["log"].unlink()
    summary = predict(model["pipeline"], model["request"], out, scheduler="processes",
                      progress=False)
    assert (summary.written, summary.skipped) == (2, 25)
    assert blocks_computed(model["log"]) == 2
    np.testing.assert_array_equal(pred[:], model["expected"])
    after = file_states(out)
    assert {f: after[f] for f in before} == before, "finished tiles were rewritten"


def test_output_of_another_job_is_refused_and_untouched(model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    predict(model["pipeline"], model["request"], out, scheduler="sync", progress=False)
    before = file_states(out)
    with pytest.raises(gp.PipelineSetupError) as error:
        predict(model["pipeline"], model["request"], out, outputs={PRED: "other"},
                scheduler="sync", progress=False)
    assert out in str(error.value) and "tiles of another job" in str(error.value)
    assert file_states(out) == before
    smaller_tiles = gp.BatchRequest()
    smaller_tiles.add(RAW, gp.Coordinate(6, 8, 6) * gp.Coordinate(2, 1, 1))
    smaller_tiles.add(PRED, gp.Coordinate(4, 4, 4) * gp.Coordinate(2, 1, 1))
    with pytest.raises(gp.PipelineSetupError, match="tiles of another job"):
        predict(model["pipeline"], smaller_tiles, out, scheduler="sync", progress=False)
    assert file_states(out) == before


def test_a_reference_without_outputs_is_an_error(model, tmp_path):
    only_raw = gp.BatchRequest()
    only_raw.add(RAW, (20, 20, 20))
    with pytest.raises(gp.PipelineSetupError, match="no output to write"):
        predict(model["pipeline"], only_raw, str(tmp_path / "p.zarr"), progress=False)
    with pytest.raises(gp.PipelineSetupError, match="not in the reference request"):
        predict(model["pipeline"], model["request"], str(tmp_path / "p.zarr"),
                outputs=[gp.ArrayKey("OTHER")], progress=False)
    assert not (tmp_path / "p.zarr").exists()




@pytest.mark.parametrize("scheduler_name", ["sync", "threads"])
def test_equivariant_pipeline_is_planned_once_per_kind_of_tile(zarr_model, tmp_path,
                                                               scheduler_name):
    out = str(tmp_path / "prediction.zarr")
    summary = predict(zarr_model["pipeline"], zarr_model["request"], out,
                      scheduler=scheduler_name, progress=False)
    # 3 x 3 x 3 tiles; along each axis the clamped last tile is a kind of its own: 2**3 kinds.
    assert summary.planning == "once per kind of tile (8 plans)"
    assert (summary.num_tiles, summary.written) == (27, 27)
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  zarr_model["expected"])
    per_tile = str(tmp_path / "per_tile.zarr")
    summary = predict(zarr_model["pipeline"], zarr_model["request"], per_tile,
                      scheduler=scheduler_name, progress=False, plan_once=False)
    assert summary.planning == "per tile: plan_once=False"
    for name in ("PRED", TILE_CHECKSUMS):
        np.testing.assert_array_equal(zarr.open_array(out, path=name, mode="r")[:],
                                      zarr.open_array(per_tile, path=name, mode="r")[:])


def test_translated_plan_on_a_cluster_and_in_processes(zarr_model, tmp_path, cluster_client):
    for name, kwargs in (("cluster", {"client": cluster_client}),
                         ("processes", {"scheduler": "processes"})):
        out = str(tmp_path / f"{name}.zarr")
        summary = predict(zarr_model["pipeline"], zarr_model["request"], out, progress=False,
                          tiles_in_flight=3, **kwargs)
        assert summary.planning.startswith("once per kind"), name
        np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                      zarr_model["expected"])


def test_pipelines_that_are_not_equivariant_are_planned_per_tile(zarr_model, model, tmp_path):
    # Scale 1, shift 0: the identity, but the node draws its parameters for every tile.
    drawing = zarr_model["pipeline"] + gp.IntensityAugment(PRED, 1, 1, 0, 0, clip=False)
    summary = predict(drawing, zarr_model["request"], str(tmp_path / "a.zarr"),
                      scheduler="threads", progress=False)
    assert summary.planning == "per tile: ['IntensityAugment'] draw random parameters"
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"), path="PRED")[:],
                                  zarr_model["expected"])
    summary = predict(model["pipeline"], model["request"], str(tmp_path / "b.zarr"),
                      scheduler="threads", progress=False)
    assert summary.planning.startswith("per tile: the source ArraySource cannot shift")
    padded = zarr_model["pipeline"] + gp.Pad(PRED, None)
    summary = predict(padded, zarr_model["request"], str(tmp_path / "c.zarr"),
                      scheduler="sync", progress=False, max_tiles=2)
    assert summary.planning == "per tile: Pad depends on the tile's position or computes " \
                               "while planning"
    assert summary.written == 2


def test_max_tiles_stops_early_and_a_rerun_continues(zarr_model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    summary = predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="threads",
                      progress=False, max_tiles=5)
    assert (summary.written, summary.skipped) == (5, 0)
    assert zarr.open_array(out, path=COMPLETED_TILES, mode="r")[:].sum() == 5
    summary = predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="threads",
                      progress=False)
    assert (summary.written, summary.skipped) == (22, 5)
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  zarr_model["expected"])


def test_changed_pipeline_hash_is_refused_unless_overwrite(zarr_model, tmp_path):
    out = str(tmp_path / "prediction.zarr")
    predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="sync",
            progress=False, pipeline_hash="model-1")
    before = file_states(out)
    with pytest.raises(gp.PipelineSetupError, match=r"the pipeline .* changed since"):
        predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="sync",
                progress=False, pipeline_hash="model-2")
    assert file_states(out) == before
    summary = predict(zarr_model["pipeline"], zarr_model["request"], out, scheduler="sync",
                      progress=False, pipeline_hash="model-2", overwrite=True)
    assert (summary.written, summary.skipped) == (27, 0)


def test_a_locked_output_is_refused_naming_the_holder(zarr_model, tmp_path):
    from daskgp.io.locks import OutputLock, OutputLockedError

    out = str(tmp_path / "prediction.zarr")
    with OutputLock(out, "another job", "daskgp predict other.py").acquire():
        with pytest.raises(OutputLockedError) as error:
            predict(zarr_model["pipeline"], zarr_model["request"], out, progress=False)
    assert f"pid {os.getpid()}" in str(error.value)
    assert "daskgp predict other.py" in str(error.value)
    assert not os.path.exists(out), "the refused job wrote nothing"



class NumpyConvolve(gp.BatchFilter):
    """The zarr pipeline file's model as a numpy node (gunpowder style): what it outputs is
    learned by running it once in the driver, for the first tile planned."""

    uses_global_random = False

    def __init__(self, kernel, context):
        self.kernel, self.context = kernel, context

    def setup(self):
        spec = self.spec[RAW].copy()
        grow = self.context * spec.voxel_size
        spec.roi = spec.roi.grow(-grow, -grow)
        self.provides(PRED, spec)

    def prepare(self, request):
        grow = self.context * self.spec[RAW].voxel_size
        deps = gp.BatchRequest()
        deps[RAW] = gp.ArraySpec(roi=request[PRED].roi.grow(grow, grow))
        return deps

    def process(self, batch, request):
        data = ndimage.convolve(batch[RAW].data, self.kernel, mode="constant")
        valid = tuple(slice(c, s - c) for c, s in zip(self.context, data.shape, strict=True))
        spec = self.spec[PRED].copy()
        spec.roi = request[PRED].roi
        out = gp.Batch()
        out[PRED] = gp.Array(data[valid], spec)
        return out


def test_numpy_model_planned_once_computes_every_tile(zarr_model, tmp_path):
    # Learning the numpy node's outputs computes the first tile in the driver; the shared plan
    # must still run the node for every tile, not write that tile's result everywhere.
    names = load_pipeline_file(ZARR_PIPELINE_FILE, names=("kernel", "CONTEXT"))
    pipeline = (gp.ZarrSource(str(tmp_path / "raw.zarr"), {RAW: "raw"})
                + NumpyConvolve(names["kernel"], names["CONTEXT"]))
    out = str(tmp_path / "prediction.zarr")
    summary = predict(pipeline, zarr_model["request"], out, scheduler="threads",
                      progress=False)
    assert summary.planning == "once per kind of tile (8 plans)"
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  zarr_model["expected"])


class CountingConvolve(NumpyConvolve):
    """NumpyConvolve that counts how many of its tasks run at once (each takes 20 ms)."""

    def __init__(self, kernel, context, counter):
        super().__init__(kernel, context)
        self.counter = counter

    def process(self, batch, request):
        import time

        with self.counter["lock"]:
            self.counter["now"] += 1
            self.counter["most"] = max(self.counter["most"], self.counter["now"])
        try:
            time.sleep(0.02)
            return super().process(batch, request)
        finally:
            with self.counter["lock"]:
                self.counter["now"] -= 1


@pytest.mark.parametrize("slots", [1, 2])
def test_no_more_tiles_compute_at_once_than_compute_slots(zarr_model, tmp_path, monkeypatch,
                                                          slots):
    import threading

    from daskgp import tile_plan

    monkeypatch.setattr(tile_plan, "compute_slots", lambda: slots)
    monkeypatch.setattr(tile_plan, "_GATE", None)
    names = load_pipeline_file(ZARR_PIPELINE_FILE, names=("kernel", "CONTEXT"))
    counter = {"lock": threading.Lock(), "now": 0, "most": 0}
    pipeline = (gp.ZarrSource(str(tmp_path / "raw.zarr"), {RAW: "raw"})
                + CountingConvolve(names["kernel"], names["CONTEXT"], counter))
    out = str(tmp_path / "prediction.zarr")
    # Four tiles in flight: their reads and writes overlap, their model tasks take turns.
    summary = predict(pipeline, zarr_model["request"], out, scheduler="threads",
                      tiles_in_flight=4, progress=False)
    assert summary.written == 27
    assert counter["most"] == slots
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  zarr_model["expected"])
