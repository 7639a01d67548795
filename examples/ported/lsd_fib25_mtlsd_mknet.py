"""The multi-task LSD network of funkelab/lsd's FIB-25 example, as a Keras 3 model.

Corresponds to ``lsd/tutorial/example_nets/fib25/mtlsd/mknet.py`` in funkelab/lsd. A
re-expression written for daskgp, not a copy: the facts carried over are the network (a valid
U-Net with 12 feature maps, x6 per level, downsampling (2, 2, 2), (2, 2, 2), (3, 3, 3), 14
feature maps out, then two 1x1x1 sigmoid heads: 10 LSD channels and 3 affinity channels), the
loss (the sum of the two per-voxel weighted mean squared errors), the optimiser (Adam, 0.5e-4,
0.95, 0.999, 1e-8), the networks' input shapes (196^3 for training, 268^3 for prediction) and
the ``<name>.json`` config that the train script reads; the code is ours.

What had to change, and why: the original builds a TF1 graph with ``mala`` (not on PyPI for
current Python) and stores a meta graph and tensor names; daskgp's ``tensorflow.Train`` is
TF2/Keras, so the network is a Keras model saved as ``<name>.keras`` (two named outputs,
``lsds`` and ``affs``, channels last), and the loss is a Python function of the batch arrays
(``mtlsd_loss``). TensorBoard gets daskgp's ``loss`` scalar instead of the three summaries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import keras
from cremi_mknet import unet, weighted_mse

DOWNSAMPLE_FACTORS = ((2, 2, 2), (2, 2, 2), (3, 3, 3))


def create_network(input_shape: Sequence[int], name: str,
                   downsample_factors: Sequence[Sequence[int]] = DOWNSAMPLE_FACTORS
                   ) -> keras.Model:
    """Build the network for ``input_shape`` voxels, save ``<name>.keras`` and
    ``<name>.json`` (input and output shapes), and return it.

    Example:
        >>> create_network((36, 36, 36), "net", [(2, 2, 2)]).output_shape  # doctest: +SKIP
        [(1, 20, 20, 20, 10), (1, 20, 20, 20, 3)]
    """
    raw = keras.Input(shape=(*input_shape, 1), batch_size=1, name="raw")
    features = unet(raw, 12, 6, downsample_factors, num_fmaps_out=14)
    lsds = keras.layers.Conv3D(10, 1, activation="sigmoid", name="lsds")(features)
    affs = keras.layers.Conv3D(3, 1, activation="sigmoid", name="affs")(features)
    model = keras.Model(raw, [lsds, affs], name=name)
    model.save(f"{name}.keras")
    output_shape = list(model.output_shape[0][1:4])
    print(f"input shape : {tuple(input_shape)}")
    print(f"output shape: {tuple(output_shape)}")
    with open(f"{name}.json", "w") as f:
        json.dump({"input_shape": list(input_shape), "output_shape": output_shape}, f)
    return model


def mtlsd_loss(lsds, gt_lsds, loss_weights_lsds, affs, gt_affs, loss_weights_affs):
    """The LSD loss plus the affinity loss, each a weighted mean squared error."""
    return (weighted_mse(gt_lsds, lsds, loss_weights_lsds)
            + weighted_mse(gt_affs, affs, loss_weights_affs))


if __name__ == "__main__":
    create_network((196, 196, 196), "train_net")
    create_network((268, 268, 268), "config")
