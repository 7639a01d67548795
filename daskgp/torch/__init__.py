"""torch nodes with gunpowder's ``gp.torch`` API: ``Train``, ``Predict``, and ``dataset``, an
``IterableDataset`` for users of their own training loops.

torch is imported only when a node is set up or a dataset made (install it with
``pip install daskgp[torch]``).
"""

from .checkpoints import checkpoint_name, latest_checkpoint
from .dataset import dataset
from .predict import Predict
from .train import Train

__all__ = ["Predict", "Train", "checkpoint_name", "dataset", "latest_checkpoint"]
