"""Makes tests/data/label_nodes.npz: small label volumes and gunpowder 1.5.0's outputs on them.

Run it with gunpowder's own Python (it does not import daskgp):

    /work/venvs/gp15/bin/python tests/data/make_label_fixtures.py

The inputs (``input/...``) are made here with a seeded numpy generator, so the daskgp tests
(tests/nodes/test_label_fixtures.py) feed exactly the same arrays to daskgp's nodes and
compare with the stored outputs (``<case>/<array>``). Each case's request ROIs are stored as
``<case>/roi/<array>`` = (offset..., shape...) in world units.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "label_nodes.npz"
SHAPE = (20, 40, 40)


def make_inputs() -> dict[str, np.ndarray]:
    """Labels with several objects and background, a mask, an unlabelled array."""
    rng = np.random.default_rng(10)
    centres = rng.uniform((0, 0, 0), SHAPE, size=(12, 3))
    grid = np.stack(np.meshgrid(*(np.arange(s) + 0.5 for s in SHAPE), indexing="ij"), -1)
    distances = np.linalg.norm((grid[..., None, :] - centres) * (2.0, 1.0, 1.0), axis=-1)
    labels = (np.argmin(distances, axis=-1) + 1).astype(np.uint64) * 7
    # Background: two objects and a slab at one face.
    labels[np.isin(labels, (14, 56))] = 0
    labels[:, :, :3] = 0
    # Large ids (beyond 2**32) as in real data.
    labels[labels == labels[10, 20, 20]] = 2**40 + 3
    mask = np.ones(SHAPE, np.uint8)
    mask[3:8, 10:25, 5:20] = 0
    mask[15:, 30:, 30:] = 0
    unlabelled = np.ones(SHAPE, np.uint8)
    unlabelled[10:14, 2:12, 20:35] = 0
    binary = (labels > 0).astype(np.uint8)
    three = (labels % 3).astype(np.uint8)
    return {"labels": labels, "mask": mask, "unlabelled": unlabelled, "binary": binary,
            "three_classes": three, "raw": rng.random(SHAPE, np.float32)}


def main() -> None:
    import gunpowder as gp
    from gunpowder.array import Array

    inputs = make_inputs()

    class Source(gp.BatchProvider):
        """Serves numpy arrays at a voxel size (gunpowder 1.5's ArraySource needs
        funlib.persistence arrays)."""

        def __init__(self, arrays: dict, voxel_size) -> None:
            self.arrays = arrays
            self.voxel_size = gp.Coordinate(voxel_size)

        def setup(self) -> None:
            for key, data in self.arrays.items():
                roi = gp.Roi((0,) * self.voxel_size.dims,
                             gp.Coordinate(data.shape[-self.voxel_size.dims:]) * self.voxel_size)
                self.provides(key, gp.ArraySpec(roi=roi, voxel_size=self.voxel_size,
                                                dtype=data.dtype,
                                                interpolatable=data.dtype.kind == "f"))

        def provide(self, request):
            batch = gp.Batch()
            for key, spec in request.array_specs.items():
                out = self.spec[key].copy()
                out.roi = spec.roi
                slices = ((spec.roi - self.spec[key].roi.offset) / self.voxel_size)
                # A copy: gunpowder's nodes change arrays in place.
                batch[key] = Array(self.arrays[key][slices.to_slices()].copy(), out)
            return batch

    results: dict[str, np.ndarray] = {f"input/{k}": v.copy() for k, v in inputs.items()}
    cases: dict[str, dict] = {}

    def run(case: str, arrays: dict, voxel_size, node_factory, request_rois: dict,
            params: dict) -> None:
        keys = {name: gp.ArrayKey(f"{case}_{name}".upper()) for name in
                set(arrays) | set(request_rois)}
        source = Source({keys[n]: inputs[src] for n, src in arrays.items()}, voxel_size)
        pipeline = source + node_factory(keys)
        request = gp.BatchRequest()
        for name, (offset, shape) in request_rois.items():
            request[keys[name]] = gp.ArraySpec(roi=gp.Roi(offset, shape))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)
        for name, (offset, shape) in request_rois.items():
            array = batch[keys[name]]
            assert array.spec.roi == gp.Roi(offset, shape), (case, name, array.spec.roi)
            results[f"{case}/{name}"] = np.array(array.data)
            results[f"{case}/roi/{name}"] = np.array([*offset, *shape])
        cases[case] = {"arrays": arrays, "voxel_size": list(voxel_size), "params": params}

    full = ((0, 0, 0), SHAPE)
    nearest = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
    long_range = nearest + [[-2, 0, 0], [0, -5, 0], [0, 0, -5], [1, 2, -3]]

    # AddAffinities: nearest, long range (with a positive offset), masks, anisotropic voxels.
    run("aff_nearest", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.AddAffinities(nearest, k["labels"], k["affinities"]),
        {"affinities": ((1, 1, 1), (19, 39, 39))}, {"neighborhood": nearest})
    run("aff_long_masks", {"labels": "labels", "labels_mask": "mask",
                           "unlabelled": "unlabelled"}, (1, 1, 1),
        lambda k: gp.AddAffinities(long_range, k["labels"], k["affinities"],
                                   labels_mask=k["labels_mask"], unlabelled=k["unlabelled"],
                                   affinities_mask=k["affinities_mask"]),
        {"affinities": ((4, 6, 6), (12, 28, 26)), "affinities_mask": ((4, 6, 6), (12, 28, 26))},
        {"neighborhood": long_range})
    run("aff_anisotropic_mask_only", {"labels": "labels", "labels_mask": "mask"}, (4, 2, 2),
        lambda k: gp.AddAffinities(long_range, k["labels"], k["affinities"],
                                   labels_mask=k["labels_mask"],
                                   affinities_mask=k["affinities_mask"], dtype=np.float32),
        {"affinities": ((8, 10, 12), (60, 60, 50)), "affinities_mask": ((8, 10, 12), (60, 60, 50))},
        {"neighborhood": long_range, "dtype": "float32"})
    run("aff_no_mask_ones", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.AddAffinities(nearest, k["labels"], k["affinities"],
                                   affinities_mask=k["affinities_mask"]),
        {"affinities": ((2, 2, 2), (10, 10, 10)), "affinities_mask": ((2, 2, 2), (10, 10, 10))},
        {"neighborhood": nearest})

    # GrowBoundary: 3D, with mask (and a mask ROI inside the labels'), only_xy, 2D.
    run("grow_3d", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.GrowBoundary(k["labels"], steps=1), {"labels": full}, {"steps": 1})
    run("grow_3d_mask", {"labels": "labels", "mask": "mask"}, (1, 1, 1),
        lambda k: gp.GrowBoundary(k["labels"], mask=k["mask"], steps=2, background=5),
        {"labels": full, "mask": full}, {"steps": 2, "background": 5})
    run("grow_mask_inner_roi", {"labels": "labels", "mask": "mask"}, (1, 1, 1),
        lambda k: gp.GrowBoundary(k["labels"], mask=k["mask"], steps=1),
        {"labels": full, "mask": ((2, 4, 4), (16, 32, 30))}, {"steps": 1})
    run("grow_only_xy", {"labels": "labels", "mask": "mask"}, (2, 1, 1),
        lambda k: gp.GrowBoundary(k["labels"], mask=k["mask"], steps=2, only_xy=True),
        {"labels": ((0, 0, 0), (40, 40, 40)), "mask": ((0, 0, 0), (40, 40, 40))},
        {"steps": 2, "only_xy": True})
    inputs["labels_2d"] = inputs["labels"][7].copy()
    inputs["mask_2d"] = inputs["mask"][5].copy()
    results["input/labels_2d"] = inputs["labels_2d"].copy()
    results["input/mask_2d"] = inputs["mask_2d"].copy()
    run("grow_2d_mask", {"labels": "labels_2d", "mask": "mask_2d"}, (1, 1),
        lambda k: gp.GrowBoundary(k["labels"], mask=k["mask"], steps=3),
        {"labels": ((0, 0), (40, 40)), "mask": ((0, 0), (40, 40))}, {"steps": 3})

    # ExcludeLabels: with an ignore mask eroded in world units on anisotropic voxels.
    exclude = [int(inputs["labels"][2, 30, 30]), 2**40 + 3, 1234]
    run("exclude", {"labels": "labels"}, (2, 1, 1),
        lambda k: gp.ExcludeLabels(k["labels"], exclude, ignore_mask=k["ignore_mask"],
                                   ignore_mask_erode=3.5),
        {"labels": ((0, 0, 0), (40, 40, 40)), "ignore_mask": ((4, 2, 0), (30, 36, 40))},
        {"exclude": exclude, "ignore_mask_erode": 3.5})
    run("exclude_no_mask_bg9", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.ExcludeLabels(k["labels"], exclude, background_value=9),
        {"labels": full}, {"exclude": exclude, "background_value": 9})

    # BalanceLabels: binary with a mask; three classes in slabs with two masks.
    run("balance_binary_mask", {"labels": "binary", "mask": "mask"}, (1, 1, 1),
        lambda k: gp.BalanceLabels(k["labels"], k["scales"], mask=k["mask"]),
        {"labels": full, "scales": full}, {})
    run("balance_slab_three", {"labels": "three_classes", "mask": "mask",
                               "mask2": "unlabelled"}, (1, 1, 1),
        lambda k: gp.BalanceLabels(k["labels"], k["scales"], mask=[k["mask"], k["mask2"]],
                                   slab=(3, -1, 16), num_classes=3, clipmin=0.1, clipmax=None),
        {"scales": ((2, 0, 4), (16, 40, 36))},
        {"slab": [3, -1, 16], "num_classes": 3, "clipmin": 0.1, "clipmax": None})

    # DownSample and UpSample: labels keep their values.
    run("downsample", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.DownSample(k["labels"], 2, k["target"]),
        {"target": ((2, 4, 6), (16, 30, 32))}, {"factor": 2})
    run("downsample_tuple", {"raw": "raw"}, (1, 1, 1),
        lambda k: gp.DownSample(k["raw"], (1, 2, 4), k["target"]),
        {"target": ((3, 2, 8), (15, 36, 28))}, {"factor": [1, 2, 4]})
    run("upsample", {"labels": "labels"}, (2, 4, 4),
        lambda k: gp.UpSample(k["labels"], 2, k["target"]),
        {"target": ((3, 6, 10), (30, 140, 130))}, {"factor": 2})
    run("upsample_coordinate", {"raw": "raw"}, (2, 4, 4),
        lambda k: gp.UpSample(k["raw"], gp.Coordinate(1, 2, 4), k["target"]),
        {"target": ((2, 4, 4), (20, 100, 120))}, {"factor": [1, 2, 4]})

    # Resample: labels (not interpolatable: nearest), raw up and down (linear, anti-aliased
    # when downsampling), 2D resampling of a 3D array (ndim=2).
    run("resample_labels", {"labels": "labels"}, (1, 1, 1),
        lambda k: gp.Resample(k["labels"], (1, 2, 2), k["target"]),
        {"target": ((2, 4, 4), (16, 32, 32))}, {"target_voxel_size": [1, 2, 2]})
    run("resample_labels_up", {"labels": "labels"}, (2, 4, 4),
        lambda k: gp.Resample(k["labels"], (1, 3, 2), k["target"]),
        {"target": ((4, 12, 8), (30, 120, 140))}, {"target_voxel_size": [1, 3, 2]})
    run("resample_raw_up", {"raw": "raw"}, (2, 4, 4),
        lambda k: gp.Resample(k["raw"], (2, 2, 2), k["target"]),
        {"target": ((4, 8, 8), (30, 100, 100))}, {"target_voxel_size": [2, 2, 2]})
    run("resample_raw_down", {"raw": "raw"}, (1, 1, 1),
        lambda k: gp.Resample(k["raw"], (2, 2, 2), k["target"]),
        {"target": ((4, 4, 4), (12, 24, 24))}, {"target_voxel_size": [2, 2, 2]})
    run("resample_raw_2d_cubic", {"raw": "raw"}, (1, 1, 1),
        lambda k: gp.Resample(k["raw"], (1, 3, 3), k["target"], ndim=2, interp_order=3),
        {"target": ((2, 3, 3), (10, 30, 27))},
        {"target_voxel_size": [1, 3, 3], "ndim": 2, "interp_order": 3})

    results["cases"] = np.array(json.dumps(cases))
    np.savez_compressed(OUT, **results)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(cases)} cases)")


if __name__ == "__main__":
    main()
