"""The dask dashboard works out of the box: ``examples/dashboard.py`` runs the seed pipeline on
a LocalCluster and its check GETs the dashboard's bokeh pages; the check fails on distributed's
"needs bokeh" placeholder."""

import http.server
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "dashboard.py"


def load_example():
    spec = importlib.util.spec_from_file_location("dashboard_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_status_page_serves_bokeh(cluster_client):
    titles = load_example().check_dashboard(cluster_client.dashboard_link)
    assert list(titles.values()) == ["Dask Diagnostic UI", "Dask: TaskStream"]


def test_example_runs_the_seed_pipeline_on_a_cluster_with_its_dashboard(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--data", str(tmp_path / "sample.zarr"),
         "--shape", "30", "120", "120", "--raw-shape", "16", "48", "48",
         "--gt-shape", "8", "24", "24", "--batches", "3", "--workers", "1",
         "--num-workers", "1", "--dashboard-address", ":0"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dashboard serves bokeh: 'Dask Diagnostic UI'" in result.stdout
    assert "3 batches in" in result.stdout
    prefixes = result.stdout.split("task prefixes the dashboard showed: ")[1]
    # Normalize right upstream of ElasticAugment, and IntensityAugment after SimpleAugment, are
    # fused into the warp's tasks: no tasks of their own.
    for node in ("zarr-source", "elastic-augment"):
        assert node in prefixes
    for node in ("normalize", "intensity-augment"):
        assert node not in prefixes


class Placeholder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"Dask needs bokeh>=3.1.0 for the dashboard."
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_check_rejects_the_placeholder_page():
    server = http.server.HTTPServer(("127.0.0.1", 0), Placeholder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="placeholder"):
            load_example().check_dashboard(f"http://127.0.0.1:{server.server_port}/status")
    finally:
        server.shutdown()
        server.server_close()
