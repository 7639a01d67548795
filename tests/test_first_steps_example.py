"""``examples/first_steps.py`` trains, snapshots (valid OME-NGFF, drawn by ``daskgp show``),
and a rerun after it finished says there is nothing to do instead of claiming it trained."""

import os
import subprocess
import sys
from pathlib import Path

import zarr
from matplotlib.image import imread
from ome_zarr_models.v04 import Image

from daskgp.cli import main
from daskgp.synthetic import write_sample

ROOT = Path(__file__).parents[1]


def run_example(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "first_steps.py"), *args],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_first_steps_trains_then_a_rerun_has_nothing_to_do(tmp_path):
    data = write_sample(tmp_path / "sample.zarr", shape=(40, 150, 150))
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--iterations", "3",
            "--save-every", "3", "--snapshot-every", "2", "--num-workers", "1"]
    first = run_example(*args)
    assert "done: 3 iterations (to 3)" in first
    snapshot = tmp_path / "run" / "snapshots" / "3.zarr"  # named by iteration
    image = Image.from_zarr(zarr.open_group(str(snapshot / "volumes"), mode="r"))
    assert image.attributes.get_array_paths() == ["raw", "boundaries", "prediction"]
    prediction = zarr.open_array(str(snapshot), path="volumes/prediction", mode="r")
    assert prediction.ndim == 4 and prediction.shape[0] == 1, "no batch axis, one channel"
    assert main(["show", str(snapshot), "--out", str(tmp_path / "snapshot.png")]) == 0
    assert imread(str(tmp_path / "snapshot.png"))[..., :3].std() > 0.1

    again = run_example(*args)
    assert "already trained to 3 iterations; nothing to do" in again
    assert "done:" not in again
