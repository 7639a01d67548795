"""Store gunpowder 1.5.0's ElasticAugment upstream ROIs, and the parameters it drew, per seed.

For 40 seeds, with and without misalignment, gunpowder's ``ElasticAugment.prepare`` is run
on one request; its draws (control-point jitter, rotation, per-section shifts) are recorded
by wrapping the functions it calls, without changing them. ``tests/nodes/test_elastic_roi.py``
builds daskgp's transform from the same parameters and checks its upstream ROI.

    /work/venvs/gp15/bin/python tests/data/make_elastic_roi_fixtures.py

writes ``tests/data/elastic_roi_fixtures.json``.
"""

import json
import math
import pathlib
import random
import warnings

import gunpowder as gp
import numpy as np
from gunpowder.ext import augment

HERE = pathlib.Path(__file__).parent
VOXEL_SIZE = (40, 4, 4)
REQUESTS = {"RAW": (24, 120, 120), "GT": (16, 80, 80)}  # voxels
CONFIGS = {
    "jitter_rotation": dict(prob_slip=0, prob_shift=0, max_misalign=0),
    "misaligned": dict(prob_slip=0.1, prob_shift=0.1, max_misalign=10),
}
PARAMS = dict(control_point_spacing=(4, 40, 40), jitter_sigma=(0, 2, 2),
              rotation_interval=(0, math.pi / 2))
SEEDS = range(40)


class Source(gp.BatchProvider):
    def setup(self):
        for name in REQUESTS:
            self.provides(gp.ArrayKey(name), gp.ArraySpec(
                roi=gp.Roi((-40000, -40000, -40000), (80000, 80000, 80000)),
                voxel_size=VOXEL_SIZE, dtype=np.float32, interpolatable=True))

    def provide(self, request):
        raise NotImplementedError("only prepare() is run")


def recording(module, name, record):
    """Wrap ``module.name`` so that its calls' arguments and np.random draws are recorded."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        normal = np.random.normal
        draws = []

        def recorded_normal(*a, **k):
            value = normal(*a, **k)
            draws.append(np.asarray(value).tolist())
            return value

        np.random.normal = recorded_normal
        try:
            return original(*args, **kwargs)
        finally:
            np.random.normal = normal
            record.append({"args": [np.asarray(a).tolist() if not isinstance(a, tuple) else a
                                    for a in args], "draws": draws})

    setattr(module, name, wrapper)
    return original


def request():
    request = gp.BatchRequest()
    for name, shape in REQUESTS.items():
        request.add(gp.ArrayKey(name), gp.Coordinate(shape) * gp.Coordinate(VOXEL_SIZE))
    return request


def run(config, seed, record):
    node = gp.ElasticAugment(**PARAMS, **config)
    with gp.build(Source() + node):
        random.seed(seed)
        np.random.seed(seed)
        deps = node.prepare(request())
        master = node.master_transformation
    return {name: [list(deps[gp.ArrayKey(name)].roi.begin),
                   list(deps[gp.ArrayKey(name)].roi.shape)] for name in REQUESTS}, master


def main():
    warnings.simplefilter("ignore")
    elastic, rotation = [], []
    recording(augment, "create_elastic_transformation", elastic)
    recording(augment, "create_rotation_transformation", rotation)
    fixtures = {"voxel_size": VOXEL_SIZE, "requests": REQUESTS, "params": PARAMS,
                "configs": CONFIGS, "seeds": {}}
    for config_name, config in CONFIGS.items():
        for seed in SEEDS:
            elastic.clear()
            rotation.clear()
            rois, master = run(config, seed, None)
            entry = {
                "rois": rois,
                "jitter": elastic[0]["draws"],
                "rotation": rotation[0]["args"][1] if rotation else 0.0,
            }
            if config["prob_slip"] + config["prob_shift"] > 0:
                # The draws before the misalignment are the same without it: the shifts are
                # the difference of the two transformations, one per section.
                _, aligned = run({"prob_slip": 0, "prob_shift": 0, "max_misalign": 0}, seed,
                                 None)
                shifts = np.rint(master[:, :, 0, 0] - aligned[:, :, 0, 0]).astype(int).T
                entry["shifts"] = shifts.tolist()
            fixtures["seeds"].setdefault(config_name, {})[str(seed)] = entry
    (HERE / "elastic_roi_fixtures.json").write_text(json.dumps(fixtures))
    for config_name, seeds in fixtures["seeds"].items():
        extent = np.max([s["rois"]["RAW"][1] for s in seeds.values()], axis=0)
        print(config_name, "largest RAW upstream extent (world units):", extent.tolist())


if __name__ == "__main__":
    main()
