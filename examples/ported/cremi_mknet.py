"""The networks of gunpowder's CREMI example, as Keras 3 models, for daskgp's ports.

Corresponds to ``examples/cremi/mknet.py`` in funkelab/gunpowder. A re-expression written for
daskgp, not a copy: the facts carried over are the network (a valid-convolution U-Net with 6
feature maps, x4 per level, downsampling (1, 3, 3) three times, then a 1x1x1 convolution to 3
sigmoid affinity channels), the optimiser's parameters (Adam, learning rate 0.5e-4, betas 0.95
and 0.999, epsilon 1e-8), the loss (mean squared error weighted per voxel), the two networks
(``train_net`` for 84x268x268 voxels, ``test_net`` for 120x322x322) and the ``<name>_config.json``
files that the train and predict scripts read; the code is ours.

What had to change, and why:

- TensorFlow 1 -> Keras 3: the original builds a TF1 graph with ``gunpowder.zoo.tensorflow``
  (gone from gunpowder 1.x) and stores it with ``tf.train.export_meta_graph``; its config
  names the graph's tensors (``"raw"``, ``"pred_affs"``, ``"loss"``, ``"optimizer"``). Current
  TensorFlow has no meta graphs outside ``tf.compat.v1``, and daskgp's ``tensorflow.Train`` is
  TF2/Keras, so ``create_network`` saves a Keras model as ``<name>.keras`` and the config keeps
  only the shapes; the loss and optimiser are Python objects (``weighted_mse``, ``optimizer``)
  that the train script passes to ``Train``;
- layout: the TF1 network reshapes raw (z, y, x) to (1, 1, z, y, x) and its affinities to
  (3, z, y, x); the Keras model takes Keras's channels-last (1, z, y, x, 1) and gives
  (1, z, y, x, 3), which daskgp's ``Train``/``Predict`` convert from and to gunpowder's layout.
  The predictions (and their gradients) keep the model's batch axis in the batch, (1, 3, z,
  y, x), where the TF1 graph reshaped it away; ``Snapshot`` and ``Hdf5Write`` store (3, z, y,
  x), as the original's files;
- dtypes: a TF1 placeholder cast what it was fed (the uint8 affinities into float32);
  ``weighted_mse`` casts its targets and weights itself.

Example:
    >>> net = create_network((20, 52, 52), "tiny", [(1, 3, 3)])  # doctest: +SKIP
    >>> net.output_shape                                         # doctest: +SKIP
    (1, 8, 32, 32, 3)
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import keras
import tensorflow as tf

DOWNSAMPLE_FACTORS = ((1, 3, 3), (1, 3, 3), (1, 3, 3))


def conv_pass(x, num_fmaps: int, kernel_size: int = 3, repetitions: int = 2,
              activation: str = "relu"):
    """``repetitions`` valid convolutions of ``kernel_size``^3 with ``num_fmaps`` maps."""
    for _ in range(repetitions):
        x = keras.layers.Conv3D(num_fmaps, kernel_size, padding="valid",
                                activation=activation)(x)
    return x


def unet(x, num_fmaps: int, fmap_inc_factor: int,
         downsample_factors: Sequence[Sequence[int]], num_fmaps_out: int | None = None):
    """A valid U-Net: a conv pass per level, max-pool down, transposed convolution up,
    the skip connection centre-cropped to the upsampled size; the last conv pass has
    ``num_fmaps_out`` maps (default ``num_fmaps``)."""
    skips = []
    for level, factor in enumerate(downsample_factors):
        x = conv_pass(x, num_fmaps * fmap_inc_factor ** level)
        skips.append(x)
        x = keras.layers.MaxPooling3D(tuple(factor))(x)
    x = conv_pass(x, num_fmaps * fmap_inc_factor ** len(downsample_factors))
    for level in reversed(range(len(downsample_factors))):
        factor = tuple(downsample_factors[level])
        width = num_fmaps * fmap_inc_factor ** level
        x = keras.layers.Conv3DTranspose(width, factor, strides=factor)(x)
        skip = skips[level]
        crop = [(have - want) // 2 for have, want in zip(skip.shape[1:4], x.shape[1:4],
                                                         strict=True)]
        extra = [(have - want) % 2 for have, want in zip(skip.shape[1:4], x.shape[1:4],
                                                         strict=True)]
        skip = keras.layers.Cropping3D([(c, c + e) for c, e in zip(crop, extra,
                                                                   strict=True)])(skip)
        if level == 0 and num_fmaps_out is not None:
            width = num_fmaps_out
        x = conv_pass(keras.layers.Concatenate()([skip, x]), width)
    return x


def create_network(input_shape: Sequence[int], name: str,
                   downsample_factors: Sequence[Sequence[int]] = DOWNSAMPLE_FACTORS,
                   num_fmaps: int = 6, fmap_inc_factor: int = 4) -> keras.Model:
    """Build the affinity network for ``input_shape`` voxels, save it as ``<name>.keras``
    and its shapes as ``<name>_config.json``, and return it."""
    raw = keras.Input(shape=(*input_shape, 1), batch_size=1, name="raw")
    features = unet(raw, num_fmaps, fmap_inc_factor, downsample_factors)
    affs = conv_pass(features, 3, kernel_size=1, repetitions=1, activation="sigmoid")
    model = keras.Model(raw, affs, name=name)
    model.save(f"{name}.keras")
    config = {"input_shape": list(input_shape), "output_shape": list(model.output_shape[1:4])}
    with open(f"{name}_config.json", "w") as f:
        json.dump(config, f)
    return model


def weighted_mse(gt_affs, pred_affs, loss_weights):
    """TF1's ``tf.losses.mean_squared_error(gt, pred, weights)``: the weighted sum of squared
    errors over the number of non-zero weights. The targets and weights are cast to the
    prediction's dtype, as TF1 did when it fed a uint8 batch array to a float32 placeholder."""
    gt_affs = tf.cast(gt_affs, pred_affs.dtype)
    loss_weights = tf.cast(loss_weights, pred_affs.dtype)
    weighted = tf.reduce_sum(loss_weights * tf.square(gt_affs - pred_affs))
    nonzero = tf.cast(tf.math.count_nonzero(loss_weights), weighted.dtype)
    return tf.math.divide_no_nan(weighted, nonzero)


def optimizer() -> keras.optimizers.Optimizer:
    """The original's Adam."""
    return keras.optimizers.Adam(learning_rate=0.5e-4, beta_1=0.95, beta_2=0.999,
                                 epsilon=1e-8)


if __name__ == "__main__":
    create_network((84, 268, 268), "train_net")   # the network for training
    create_network((120, 322, 322), "test_net")   # a larger one for faster prediction
