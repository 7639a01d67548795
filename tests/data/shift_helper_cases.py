"""Calls of ShiftAugment's public helpers, run by gunpowder (fixtures) and daskgp (tests)."""

import random

import numpy as np


def run_cases(gp) -> dict:
    """Each helper call's result, as JSON-ready lists, computed with the library ``gp``."""
    shift = gp.ShiftAugment
    out = {}
    for seed, (length, sigmas, slip, prob_shift, lcm) in enumerate([
            (3, (0, 4), 0.0, 1.0, (1, 2)), (12, (0, 8, 8), 0.3, 0.3, (4, 2, 2)),
            (20, (0, 6, 3), 0.5, 0.0, (1, 1, 1)), (9, (0, 10, 10), 0.0, 0.4, (2, 2, 2))]):
        random.seed(seed)
        np.random.seed(seed)
        out[f"construct_global_shift_array_{seed}"] = shift.construct_global_shift_array(
            length, sigmas, slip, prob_shift, lcm).tolist()
    shifts = np.array(out["construct_global_shift_array_1"])
    total = gp.Roi((0, 0, 0), (48, 40, 40))
    for name, item in {"all": total, "part": gp.Roi((8, 0, 0), (20, 40, 40))}.items():
        sub = shift.get_sub_shift_array(total, item, shifts, 0, (4, 2, 2))
        out[f"get_sub_shift_array_{name}"] = sub.tolist()
        roi = shift.compute_upstream_roi(item, sub)
        out[f"compute_upstream_roi_{name}"] = [list(roi.begin), list(roi.shape)]
    node = shift(prob_slip=0.2, prob_shift=0.2, sigma=4, shift_axis=0)
    node.ndim = 3  # gunpowder sets it in prepare()
    data = np.arange(12 * 30 * 30, dtype=np.float32).reshape(12, 30, 30)
    sub = np.array(out["get_sub_shift_array_all"])
    out["shift_and_crop"] = node.shift_and_crop(data, (48, 40, 40), sub, (4, 2, 2)).tolist()
    return out
