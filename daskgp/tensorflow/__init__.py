"""TensorFlow 2 / Keras 3 nodes: ``Train``, ``Predict`` and a ``tf.data`` adapter.

TensorFlow is imported only when a node is set up (install it with ``pip install
daskgp[tensorflow]``).
"""

from .dataset import dataset
from .local_server import LocalServer
from .predict import Predict
from .train import Train

__all__ = ["LocalServer", "Predict", "Train", "dataset"]
