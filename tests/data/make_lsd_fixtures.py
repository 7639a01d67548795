"""Store gunpowder 1.5.0's outputs for lsd's node in ``lsd_cases.py``.

Run with gunpowder's interpreter (lsd installed there without its dependencies, as in the
README's test command: ``/work/venvs/gp15/bin/python -m pip install --no-deps lsds==0.1.3``)
from the repository root:

    /work/venvs/gp15/bin/python tests/data/make_lsd_fixtures.py

writes ``tests/data/lsd_fixtures.npz``.
"""

import pathlib
import sys

import gunpowder
import numpy as np

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))

from lsd_cases import run_cases  # noqa: E402

if __name__ == "__main__":
    outputs = run_cases(gunpowder)
    np.savez_compressed(HERE / "lsd_fixtures.npz", **outputs)
    for name, data in outputs.items():
        print(f"{name}: {data.shape} {data.dtype} [{data.min()}, {data.max()}]")
