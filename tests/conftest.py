"""Shared test helpers: synthetic data that encodes voxel position, and real schedulers."""

from __future__ import annotations

from pathlib import Path

import pytest

from daskgp.cli import load_pipeline_file


@pytest.fixture(scope="session")
def cluster_client():
    """A real ``distributed`` cluster: 2 worker processes, 1 thread each, dashboard on any free
    port."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(params=["sync", "threads", "processes", "distributed"])
def scheduler(request):
    """Each of the four schedulers a batch must come out identical on."""
    if request.param == "distributed":
        return request.getfixturevalue("cluster_client")
    return request.param


#: The standalone pipeline file the predict/verify tests load (``tests/data``).
ZARR_PIPELINE_FILE = Path(__file__).parent / "data" / "predict_zarr_pipeline.py"


@pytest.fixture
def zarr_model(monkeypatch, tmp_path):
    """The zarr predict pipeline file's names, its volume written to ``tmp_path``."""
    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.setenv("DASKGP_TEST_RAW", str(tmp_path / "raw.zarr"))
    monkeypatch.delenv("DASKGP_TEST_LOG", raising=False)
    names = load_pipeline_file(ZARR_PIPELINE_FILE, names=("write_raw", "expected_prediction"))
    names["write_raw"](str(tmp_path / "raw.zarr"))
    return {**load_pipeline_file(ZARR_PIPELINE_FILE), "expected": names["expected_prediction"]()}
