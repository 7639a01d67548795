"""``examples/first_steps.ipynb`` runs headless in a real Jupyter kernel (nbclient) with a
LocalCluster: dashboard link and check, batches rendered as HTML and PNG, threads against the
cluster with identical bits, and a few training iterations. The stored notebook has no
outputs."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "first_steps.ipynb"


def small_parameters(folder: Path) -> str:
    return "\n".join([
        f"DATA = {str(folder / 'sample.zarr')!r}",
        "SHAPE = (40, 150, 150)",
        "SEED_RAW, SEED_GT = (20, 80, 80), (12, 40, 40)",
        "RAW_SHAPE = (20, 64, 64)",
        "TIMED_BATCHES = 2",
        "ITERATIONS = 3",
        "WORKERS = 1",
        'DASHBOARD = ":0"',
    ])


def outputs_of(cell) -> tuple[str, dict]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    data: dict = {}
    for output in cell.outputs:
        data.update(output.get("data", {}))
    return text, data


def test_the_stored_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_the_notebook_runs_in_a_kernel_with_a_local_cluster(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells[1].source = small_parameters(tmp_path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    cells = {cell.source.splitlines()[-1]: outputs_of(cell)
             for cell in notebook.cells if cell.cell_type == "code" and cell.source}

    text, data = cells["client"]
    assert "dashboard: http://" in text and "dashboard" in data["text/html"].lower()
    _, data = cells["check_dashboard(client.dashboard_link)"]
    assert "Dask Diagnostic UI" in data["text/plain"]

    _, data = cells["batch"]
    assert "<table>" in data["text/html"] and "(20, 80, 80)" in data["text/html"]
    assert "image/png" in data
    _, data = cells["lazy[raw].data"]
    assert "dask.array" in data["text/plain"]

    text, _ = cells['print("same bits on threads and on the cluster")']
    assert "threads: first batch" in text and "LocalCluster(1x1): first batch" in text
    assert "same bits on threads and on the cluster" in text

    text, data = cells["trained"]
    assert "3 iterations in" in text and "loss" in text
    assert "PREDICTION" in data["text/html"] and "image/png" in data
