"""Shared test helpers: synthetic data that encodes voxel position, and real schedulers."""

from __future__ import annotations

import pytest


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
