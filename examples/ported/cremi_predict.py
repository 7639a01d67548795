"""Blockwise affinity prediction over a CREMI sample, in the style of gunpowder's own example,
built with daskgp.

Corresponds to ``examples/cremi/predict.py`` in funkelab/gunpowder. A re-expression written
for daskgp, not a copy: the facts carried over are the keys, the request (raw at the test
network's input size, affinities at its output size), the provided-ROI lookup (``with
gp.build(source): source.spec[raw].roi``), the output ROI (the raw ROI shrunk by the
input-output difference on each side), the nodes in order (``Hdf5Source`` + ``Normalize`` +
``tensorflow.Predict`` + ``Hdf5Write({raw, pred_affs}, output_filename=
"predictions_sample_A.hdf", compression_type="gzip")`` + ``PrintProfilingStats(every=10)`` +
``Scan(reference=request)``), and the empty request that starts the scan; the code and
comments are ours.

What still had to change, and why:

- import: ``import daskgp as gp`` (was ``import gunpowder as gp``);
- network: ``tensorflow.Predict(graph="test_net.meta", checkpoint=..., inputs={tensor name:
  raw}, outputs={tensor name: pred_affs}, ...)`` becomes ``tensorflow.Predict(
  keras.models.load_model("test_net.keras"), inputs={0: raw}, outputs={0: pred_affs},
  checkpoint=..., array_specs=...)``: daskgp's TensorFlow nodes take a Keras model, not a TF1
  meta graph (see ``cremi_mknet.py``). The checkpoint is still the training script's
  ``train_net_checkpoint_<iteration>``, loaded into the larger test network;
- data paths: ``data_dir`` (default ``.``), and the output file in the working directory as in
  the original.

What differs in the output: ``Hdf5Write``'s datasets cover what the scan covers of each key
(here raw from the first block's input to the last one's, at offset (240, 40, 40) nm on the
test's data), where gunpowder's cover the key's whole provided ROI and leave zeros where no
block wrote (see ``docs/gunpowder.md``, ``ZarrWrite``/``Hdf5Write``).

Run: ``python cremi_mknet.py && python cremi_predict.py 200000``, or after
``python cremi_train.py 10 --small``: ``python cremi_predict.py 10 --small``.
"""

from __future__ import annotations

import argparse
import json
import os

import keras

import daskgp as gp


def predict(iteration: int, data_dir: str = ".") -> None:
    """Predict affinities for sample A with the checkpoint of training ``iteration``."""
    raw = gp.ArrayKey("RAW")
    pred_affs = gp.ArrayKey("PRED_AFFS")

    with open("test_net_config.json") as f:
        net_config = json.load(f)
    voxel_size = gp.Coordinate((40, 4, 4))
    input_size = gp.Coordinate(net_config["input_shape"]) * voxel_size
    output_size = gp.Coordinate(net_config["output_shape"]) * voxel_size
    context = input_size - output_size

    request = gp.BatchRequest()
    request.add(raw, input_size)
    request.add(pred_affs, output_size)

    source = gp.Hdf5Source(os.path.join(data_dir, "sample_A_padded_20160501.hdf"),
                           datasets={raw: "volumes/raw"})
    # the ROI that raw covers decides where predictions can be made
    with gp.build(source):
        raw_roi = source.spec[raw].roi

    pipeline = (
        source
        + gp.Normalize(raw)
        + gp.tensorflow.Predict(
            keras.models.load_model("test_net.keras"),
            inputs={0: raw}, outputs={0: pred_affs},
            checkpoint=f"train_net_checkpoint_{iteration}",
            array_specs={pred_affs: gp.ArraySpec(roi=raw_roi.grow(-context, -context))})
        + gp.Hdf5Write({raw: "/volumes/raw", pred_affs: "/volumes/pred_affs"},
                       output_filename="predictions_sample_A.hdf", compression_type="gzip")
        + gp.PrintProfilingStats(every=10)
        + gp.Scan(reference=request)
    )

    with gp.build(pipeline):
        # an empty request: Scan covers everything upstream provides, block by block
        pipeline.request_batch(gp.BatchRequest())


SMALL_TEST_NET = dict(input_shape=(28, 70, 70), downsample_factors=[(1, 3, 3)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iteration", type=int, nargs="?", default=200000)
    parser.add_argument("--small", action="store_true",
                        help="first write the small test_net that matches cremi_train.py "
                             "--small's data (what the test runs)")
    args = parser.parse_args()
    if args.small:
        from cremi_mknet import create_network

        create_network(SMALL_TEST_NET["input_shape"], "test_net",
                       SMALL_TEST_NET["downsample_factors"])
    predict(args.iteration)
