"""Reads tests/data/label_nodes.npz (gunpowder 1.5.0's outputs, made by make_label_fixtures.py)
and runs the same case through daskgp, with the inputs chunked as a test asks."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np

import daskgp as gp

FIXTURES = Path(__file__).resolve().parent / "label_nodes.npz"
_cache: dict = {}


def _data():
    if "data" not in _cache:
        with np.load(FIXTURES) as data:
            _cache["data"] = {k: data[k] for k in data.files}
    return _cache["data"]


def case(name: str) -> dict:
    """The case's ``arrays`` (key name -> input name), ``voxel_size``, ``params``, request
    ``rois`` (name -> Roi) and gunpowder's ``expected`` outputs (name -> numpy array)."""
    data = _data()
    info = json.loads(str(data["cases"]))[name]
    rois, expected = {}, {}
    for key in data:
        if key.startswith(f"{name}/roi/"):
            values = data[key]
            dims = len(values) // 2
            rois[key.rsplit("/", 1)[1]] = gp.Roi(tuple(values[:dims]), tuple(values[dims:]))
        elif key.startswith(f"{name}/"):
            expected[key.split("/", 1)[1]] = data[key]
    return {**info, "rois": rois, "expected": expected}


def input_array(name: str) -> np.ndarray:
    """One of the stored inputs (``labels``, ``mask``, ...), as a fresh copy."""
    return _data()[f"input/{name}"].copy()


def run_case(name: str, node_factory, chunks=None, seed: int = 0) -> tuple[dict, dict]:
    """Run case ``name`` through ``ArraySource`` s + ``node_factory(keys)`` with daskgp; the
    inputs are dask arrays with ``chunks`` (None: one chunk). Returns (outputs, expected) as
    name -> numpy array."""
    info = case(name)
    keys = {n: gp.ArrayKey(f"{name}_{n}".upper()) for n in set(info["arrays"]) | set(info["rois"])}
    voxel_size = gp.Coordinate(info["voxel_size"])
    sources = []
    for key_name, input_name in info["arrays"].items():
        data = input_array(input_name)
        data = da.from_array(data, chunks=chunks if chunks is not None else -1)
        shape = gp.Coordinate(data.shape[data.ndim - voxel_size.dims:])
        spec = gp.ArraySpec(roi=gp.Roi((0,) * voxel_size.dims, shape * voxel_size),
                            voxel_size=voxel_size, interpolatable=data.dtype.kind == "f")
        sources.append(gp.ArraySource(keys[key_name], data, spec))
    pipeline = tuple(sources) + gp.MergeProvider() + node_factory(keys)
    request = gp.BatchRequest(random_seed=seed)
    for key_name, roi in info["rois"].items():
        request[keys[key_name]] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_batch(request)
    outputs = {n: batch[keys[n]].data for n in info["rois"]}
    return outputs, info["expected"]
