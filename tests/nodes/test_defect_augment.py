"""DefectAugment: missing, low-contrast, artifact and folded sections, by value, seeded."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

import daskgp as gp
from daskgp import Roi
from daskgp.nodes.defect_augment import fold_field
from tests.helpers import array_source, position_data

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")
ART, ALPHA = gp.ArrayKey("ART"), gp.ArrayKey("ALPHA")


def smooth_raw(shape, seed=0, dtype=np.float32) -> np.ndarray:
    """Float values in [0.2, 0.8], different in every voxel."""
    return np.random.default_rng(seed).uniform(0.2, 0.8, shape).astype(dtype)


def request_for(seed=0, **rois) -> gp.BatchRequest:
    """A request with ``rois`` (key name -> (offset, shape)) and ``seed``."""
    request = gp.BatchRequest(random_seed=seed)
    for name, (offset, shape) in rois.items():
        request[gp.ArrayKey(name)] = gp.ArraySpec(roi=Roi(offset, shape))
    return request


def run(pipeline, request, scheduler="sync"):
    with gp.build(pipeline, scheduler=scheduler) as p:
        return p.request_batch(request)


def low_contrast(section: np.ndarray, scale: float) -> np.ndarray:
    """gunpowder's low-contrast section, in the section's precision."""
    mean = section.dtype.type(section.mean(dtype=np.float64))
    return (section - mean) * section.dtype.type(scale) + mean


def classify(before: np.ndarray, after: np.ndarray, scale: float) -> str | None:
    """Which defect turned section ``before`` into ``after``; fails if none explains it."""
    if np.array_equal(after, before):
        return None
    if not after.any():
        return "missing"
    np.testing.assert_allclose(after, low_contrast(before, scale), atol=1e-6)
    return "low-contrast"


@pytest.mark.parametrize("axis", [0, 2])
def test_each_section_is_missing_low_contrast_or_untouched(axis):
    data = smooth_raw((8, 8, 8))
    labels = np.arange(8**3).reshape(8, 8, 8)
    source = (array_source(RAW, data), array_source(GT, labels)) + gp.MergeProvider()
    node = gp.DefectAugment(RAW, prob_missing=0.3, prob_low_contrast=0.3, contrast_scale=0.2,
                            axis=axis)
    counts = {None: 0, "missing": 0, "low-contrast": 0}
    with gp.build(source + node, scheduler="sync") as p:
        for seed in range(6):
            request = request_for(seed, RAW=((0, 0, 0), (8, 8, 8)), GT=((0, 0, 0), (8, 8, 8)))
            batch = p.request_batch(request)
            kinds = [
                classify(np.take(data, s, axis), np.take(batch[RAW].data, s, axis), 0.2)
                for s in range(8)
            ]
            assert kinds == node._draw(request)[0]
            for kind in kinds:
                counts[kind] += 1
            np.testing.assert_array_equal(batch[GT].data, labels)
    assert min(counts.values()) >= 8, counts  # 48 sections, about 14 of each


def test_certain_defects_and_channels():
    data = np.stack([smooth_raw((4, 6, 6), 1), smooth_raw((4, 6, 6), 2)])  # channels first
    request = request_for(3, RAW=((0, 0, 0), (4, 6, 6)))
    out = run(array_source(RAW, data) + gp.DefectAugment(RAW, 1.0, 0.0), request)[RAW].data
    assert out.shape == data.shape and out.dtype == np.float32 and not out.any()
    node = gp.DefectAugment(RAW, 0.0, 1.0, contrast_scale=0.5)
    out = run(array_source(RAW, data) + node, request)[RAW].data
    for z in range(4):  # one mean over the whole section, channels included
        np.testing.assert_allclose(out[:, z], low_contrast(data[:, z], 0.5), atol=1e-6)


def test_integer_data_is_rounded_in_its_range():
    data = np.random.default_rng(0).integers(0, 256, (3, 5, 5)).astype(np.uint8)
    node = gp.DefectAugment(RAW, 0.0, 1.0, contrast_scale=0.5)
    out = run(array_source(RAW, data) + node, request_for(1, RAW=((0, 0, 0), (3, 5, 5))))
    for z in range(3):
        mean = data[z].mean(dtype=np.float64)
        expected = np.rint((data[z] - mean) * 0.5 + mean).astype(np.uint8)
        np.testing.assert_array_equal(out[RAW].data[z], expected)


def test_same_seed_same_batch_other_seeds_differ_and_p_zero_skips():
    data = smooth_raw((10, 6, 6))
    pipeline = array_source(RAW, data) + gp.DefectAugment(RAW, 0.3, 0.3)
    with gp.build(pipeline, scheduler="sync") as p:
        first, again, other = (
            p.request_batch(request_for(seed, RAW=((0, 0, 0), (10, 6, 6))))[RAW].data
            for seed in (5, 5, 6)
        )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    for node in (gp.DefectAugment(RAW, 0.3, 0.3, p=0.0), gp.DefectAugment(RAW, 0, 0)):
        out = run(array_source(RAW, data) + node, request_for(5, RAW=((0, 0, 0), (10, 6, 6))))
        np.testing.assert_array_equal(out[RAW].data, data)


def test_folds_push_content_towards_a_blacked_out_line():
    # Position data (labels: nearest-voxel sampling): every kept voxel shows the voxel
    # ``strength`` away along the line's normal, in opposite directions on the two sides.
    data = position_data((6, 60, 60))
    node = gp.DefectAugment(RAW, 0, 0, prob_deform=1.0, deformation_strength=5)
    roi = Roi((1, 15, 15), (5, 30, 30))
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        for seed in range(3):
            out = p.request_batch(request_for(seed, RAW=(roi.begin, roi.shape)))[RAW].data
            for z in range(5):
                section = out[z]
                kept = section != 0
                assert 0 < kept.sum() < section.size
                rows, cols = np.nonzero(kept)
                values = section[kept]
                assert (values // 10**8 == z + 1).all()
                offsets = np.stack([(values // 10**4) % 10**4 - (rows + 15),
                                    values % 10**4 - (cols + 15)], axis=1)
                distinct = np.unique(offsets, axis=0)
                assert len(distinct) <= 2
                if len(distinct) == 2:
                    np.testing.assert_array_equal(distinct[0], -distinct[1])
                assert 4 <= np.hypot(*distinct[0]) <= 6


def test_folded_sections_match_a_whole_section_reference():
    data = smooth_raw((6, 40, 40))
    node = gp.DefectAugment(RAW, 0, 0, prob_deform=0.5, deformation_strength=4)
    request = request_for(3, RAW=((0, 10, 10), (6, 20, 20)))
    out = run(array_source(RAW, data) + node, request)[RAW].data
    kinds, folds, _ = node._draw(request)
    assert "deform" in kinds and None in kinds
    for z, kind in enumerate(kinds):
        if kind is None:
            np.testing.assert_array_equal(out[z], data[z, 10:30, 10:30])
            continue
        rows, cols, band = fold_field((28, 28), *folds[z], 4)
        expected = map_coordinates(data[z, 6:34, 6:34], [rows, cols], order=3)
        expected = np.clip(expected, 0, 1)
        expected[band] = 0
        np.testing.assert_allclose(out[z], expected[4:-4, 4:-4], atol=1e-6)
        assert out[z].max() <= 1 and out[z].min() == 0


def test_fold_near_the_border_is_an_error_naming_the_rois():
    data = smooth_raw((4, 20, 20))
    node = gp.DefectAugment(RAW, 0, 0, prob_deform=1.0, deformation_strength=5)
    with pytest.raises(gp.BatchRequestError,
                       match=r"DefectAugment: RAW's requested ROI \[0:4, 0:20, 0:20\].*Pad"):
        run(array_source(RAW, data) + node, request_for(1, RAW=((0, 0, 0), (4, 20, 20))))


def artifact_source(alpha=0.5, alpha_dtype=np.float32):
    """Position-encoding artifacts (float64) and a constant alpha, at random locations."""
    artifacts = position_data((8, 40, 40)).astype(np.float64)
    mask = np.full((8, 40, 40), alpha, dtype=alpha_dtype)
    sources = (array_source(ART, artifacts), array_source(ALPHA, mask))
    return sources + gp.MergeProvider() + gp.RandomLocation()


def test_artifacts_are_blended_in_from_the_artifact_source():
    data = smooth_raw((6, 10, 12), dtype=np.float64)
    node = gp.DefectAugment(RAW, 0, 0, prob_artifact=1.0, artifact_source=artifact_source(),
                            artifacts=ART, artifacts_mask=ALPHA)
    request = request_for(2, RAW=((0, 0, 0), (6, 10, 12)))
    with gp.build(array_source(RAW, data) + node, scheduler="sync") as p:
        out = p.request_batch(request)[RAW].data
        again = p.request_batch(request)[RAW].data
    np.testing.assert_array_equal(out, again)
    reference = position_data((8, 40, 40))
    corners = set()
    for z in range(6):
        artifact = np.rint(2 * out[z] - data[z]).astype(np.int64)  # alpha = 0.5
        corner = (artifact[0, 0] // 10**8, (artifact[0, 0] // 10**4) % 10**4,
                  artifact[0, 0] % 10**4)
        np.testing.assert_array_equal(
            artifact, reference[corner[0], corner[1]:corner[1] + 10, corner[2]:corner[2] + 12]
        )
        corners.add(corner)
    assert len(corners) > 3  # every section gets its own artifact


def test_artifact_alpha_outside_unit_range_and_bad_setups_are_errors():
    data = smooth_raw((3, 10, 12))
    node = gp.DefectAugment(RAW, 0, 0, prob_artifact=1.0, artifact_source=artifact_source(1.5),
                            artifacts=ART, artifacts_mask=ALPHA)
    with pytest.raises(gp.BatchError, match=r"DefectAugment: ALPHA has values outside \[0, 1\]"):
        run(array_source(RAW, data) + node, request_for(1, RAW=((0, 0, 0), (3, 10, 12))))
    bad_nodes = [
        gp.DefectAugment(RAW, 0, 0, prob_artifact=0.5),
        gp.DefectAugment(RAW, 0, 0, prob_artifact=0.5, artifact_source=artifact_source(1, int),
                         artifacts=ART, artifacts_mask=ALPHA),
        gp.DefectAugment(RAW, 0.6, 0.6),
        gp.DefectAugment(RAW, axis=3),
    ]
    for node in bad_nodes:
        with pytest.raises(gp.PipelineSetupError, match="DefectAugment"):
            with gp.build(array_source(RAW, data) + node):
                pass


def _never_computed(block):
    raise AssertionError("DefectAugment computed data while building the graph")


def test_graph_is_lazy_and_named_after_the_node():
    data = da.map_blocks(_never_computed, da.zeros((12, 40, 40), chunks=(4, 20, 20)),
                         dtype=np.float32)
    node = gp.DefectAugment(RAW, 0.25, 0.25, prob_deform=0.25, deformation_strength=3)
    kinds = {"missing", "low-contrast", "deform"}
    with gp.build(array_source(RAW, data) + node) as p:
        request = next(  # the first seed that draws every kind of defect
            r for r in (request_for(s, RAW=((0, 10, 10), (12, 20, 20))) for s in range(50))
            if set(node._draw(r)[0]) == kinds | {None}
        )
        lazy = p.request_lazy_batch(request)[RAW].data
    assert isinstance(lazy, da.Array) and lazy.shape == (12, 20, 20)
    prefixes = {str(k[0] if isinstance(k, tuple) else k).rsplit("-", 1)[0]
                for k in lazy.__dask_graph__()}
    assert {f"defect-augment-{kind}" for kind in kinds} <= prefixes


def test_identical_on_every_scheduler(scheduler):
    data = da.from_array(smooth_raw((8, 24, 24)), chunks=(4, 12, 12))
    node = gp.DefectAugment(RAW, 0.2, 0.2, prob_artifact=0.2, prob_deform=0.2,
                            deformation_strength=3, artifact_source=artifact_source(0.3),
                            artifacts=ART, artifacts_mask=ALPHA)
    pipeline = array_source(RAW, data) + node
    request = request_for(3, RAW=((0, 4, 4), (8, 16, 16)))
    reference = run(pipeline, request)[RAW].data
    np.testing.assert_array_equal(run(pipeline, request, scheduler)[RAW].data, reference)
    assert len(set(node._draw(request)[0])) >= 4
