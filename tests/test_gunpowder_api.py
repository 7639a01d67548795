"""gunpowder's data-model methods that copied user nodes call, with gunpowder's semantics."""

import random
import warnings

import numpy as np
import pytest

import daskgp as gp
from daskgp.profiling import ProfilingStats, Timing
from tests.data.tutorial_nodes import make_nodes

RAW, GT = gp.ArrayKey("RAW"), gp.ArrayKey("GT")


def test_array_spec_update_with_takes_the_union_and_set_fields():
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (4, 4)), voxel_size=(1, 1), dtype=np.float32)
    spec.update_with(gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4)), interpolatable=False))
    assert spec.roi == gp.Roi((0, 0), (6, 6))
    assert spec.voxel_size == gp.Coordinate(1, 1) and spec.dtype == np.float32
    assert spec.interpolatable is False


def test_provider_spec_helpers():
    spec = gp.ProviderSpec()
    spec[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(2, 4))
    spec[GT] = gp.ArraySpec(roi=gp.Roi((4, 4), (8, 8)), voxel_size=(4, 2), placeholder=True)
    assert spec.get_total_roi() == gp.Roi((0, 0), (12, 12))
    assert spec.get_common_roi() == gp.Roi((4, 4), (4, 4))
    assert spec.get_lcm_voxel_size(array_keys=[RAW, GT]) == gp.Coordinate(4, 4)
    spec.remove_placeholders()
    assert list(spec) == [RAW]


def test_batch_request_merge_is_the_deprecated_union():
    a, b = gp.BatchRequest(), gp.BatchRequest()
    a[RAW] = gp.Roi((0, 0), (4, 4))
    b[RAW] = gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4)), dtype=np.uint8)
    b[GT] = gp.Roi((0, 0), (2, 2))
    with pytest.warns(DeprecationWarning, match="update_with"):
        merged = a.merge(b)
    assert merged[RAW].roi == gp.Roi((0, 0), (6, 6)) and merged[RAW].dtype is None
    assert merged[GT].roi == gp.Roi((0, 0), (2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert a.update_with(b)[RAW].dtype == np.uint8


def test_array_crop_copies_numpy_data_unless_asked_not_to():
    array = gp.Array(np.arange(16.0).reshape(4, 4),
                     gp.ArraySpec(roi=gp.Roi((0, 0), (4, 4)), voxel_size=(1, 1)))
    copied = array.crop(gp.Roi((1, 1), (2, 2)))
    copied.data[:] = -1
    assert array.data.min() == 0
    view = array.crop(gp.Roi((1, 1), (2, 2)), copy=False)
    view.data[:] = -1
    assert array.data[1, 1] == -1
    with pytest.raises(NotImplementedError, match=r"Batch\.merge"):
        array.merge(copied)


def test_batch_merge_keeps_profiling_stats_when_asked():
    a, b = gp.Batch(), gp.Batch()
    a.profiling_stats, b.profiling_stats = "mine", "theirs"
    assert a.merge(b, merge_profiling_stats=False).profiling_stats == "mine"
    assert a.merge(b).profiling_stats == "theirs"


class SeesPlaceholders(gp.BatchProvider):
    """A user source that records which keys reach provide()."""

    def __init__(self, enable):
        self.enable = enable
        self.seen = []

    def setup(self):
        if self.enable:
            self.enable_placeholders()
        for key in (RAW, GT):
            self.provides(key, gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)), voxel_size=(1, 1)))

    def provide(self, request):
        self.seen.append(sorted(str(k) for k in request))
        batch = gp.Batch()
        for key, spec in request.array_specs.items():
            if not spec.placeholder:
                batch[key] = gp.Array(np.zeros(spec.roi.shape, np.float32), spec.copy())
        return batch


@pytest.mark.parametrize("enable", [False, True])
def test_providers_drop_placeholders_unless_enabled(enable):
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (4, 4))
    request.add(GT, (4, 4), placeholder=True)
    source = SeesPlaceholders(enable)
    with gp.build(source, scheduler="sync") as p:
        batch = p.request_batch(request)
    assert source.seen[0] == (["GT", "RAW"] if enable else ["RAW"])
    assert list(batch.arrays) == [RAW]


def test_remove_provided_set_seeds_and_internal_teardown():
    nodes = make_nodes(gp)
    node = nodes["InvertIntoNewArray"](RAW, GT)
    with gp.build(nodes["SineSource"](RAW) + node, scheduler="sync"):
        request = gp.BatchRequest(random_seed=3)
        request[RAW] = gp.Roi((0, 0), (4, 4))
        request[GT] = gp.Roi((0, 0), (4, 4))
        node.remove_provided(request)
        assert list(request) == [RAW]
        node.set_seeds(request)
        drawn = random.random(), np.random.random()
        random.seed(3)
        np.random.seed(3)
        assert drawn == (random.random(), np.random.random())
        assert GT in node.spec
        node.internal_teardown()
        assert node.provided_items == []


class SkipOdd(gp.BatchFilter):
    """Doubles RAW unless skip_node says so; counts prepare calls."""

    def __init__(self):
        self.prepared = 0

    def skip_node(self, request):
        return random.random() < 0.5

    def prepare(self, request):
        self.prepared += 1

    def process(self, batch, request):
        batch[RAW].data = batch[RAW].data * 2


def test_skip_node_is_seeded_and_skips_prepare_and_process():
    nodes = make_nodes(gp)
    node = SkipOdd()
    pipeline = nodes["SineSource"](RAW) + node
    outcomes = {}
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(12):
            request = gp.BatchRequest(random_seed=seed)
            request[RAW] = gp.Roi((0, 0), (4, 4))
            before = node.prepared
            again = p.request_batch(request)[RAW].data
            outcomes[seed] = (node.prepared > before, again)
    plain = make_nodes(gp)["SineSource"](RAW)
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.Roi((0, 0), (4, 4))
    with gp.build(plain, scheduler="sync") as p:
        reference = p.request_batch(request)[RAW].data
    ran = [seed for seed, (prepared, _) in outcomes.items() if prepared]
    assert 0 < len(ran) < 12, "skip_node decided differently for different seeds"
    for _seed, (prepared, data) in outcomes.items():
        np.testing.assert_array_equal(data, reference * (2 if prepared else 1))
    with gp.build(pipeline, scheduler="sync") as p:
        request = gp.BatchRequest(random_seed=ran[0])
        request[RAW] = gp.Roi((0, 0), (4, 4))
        np.testing.assert_array_equal(p.request_batch(request)[RAW].data, reference * 2)


class AutoSkipped(gp.BatchFilter):
    def setup(self):
        self.enable_autoskip()
        self.updates(GT, self.spec[GT].copy())

    def process(self, batch, request):
        raise AssertionError("autoskip should have skipped this node")


def test_autoskip_ignores_placeholder_keys():
    source = gp.ArraySource(RAW, gp.Array(np.zeros((8, 8), np.float32),
                                          gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)),
                                                       voxel_size=(1, 1))))
    gt_source = gp.ArraySource(GT, gp.Array(np.ones((8, 8), np.float32),
                                            gp.ArraySpec(roi=gp.Roi((0, 0), (8, 8)),
                                                         voxel_size=(1, 1))))
    node = AutoSkipped()
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (4, 4))
    request.add(GT, (4, 4), placeholder=True)
    with gp.build((source, gt_source) + gp.MergeProvider() + node, scheduler="sync") as p:
        assert list(p.request_batch(request).arrays) == [RAW]
        assert node.autoskip_enabled


def test_profiling_stats_have_gunpowders_accessors():
    stats = ProfilingStats()
    timing = Timing("Normalize", "process")
    timing.start()
    timing.stop()
    stats.add(timing)
    stats.add("Normalize", "process", 0.5)
    summary = stats.get_timing_summary("Normalize", "process")
    assert summary.counts() == 2 and summary.max() == 0.5
    assert summary.min() == pytest.approx(timing.elapsed())
    assert set(stats.get_timing_summaries()) == {("Normalize", "process")}
    other = ProfilingStats()
    other.add("Normalize", "process", 0.25)
    stats.merge_with(other)
    assert stats.get_timing_summary("Normalize", "process").counts() == 3
    assert stats.span_time() >= 0.5
    with pytest.raises(RuntimeError, match="no timing summary for node Crop"):
        stats.get_timing_summary("Crop", "process")


def test_request_batch_on_the_built_node_computes_as_in_gunpowder():
    nodes = make_nodes(gp)
    source = nodes["SineSource"](RAW)
    request = gp.BatchRequest()
    request[RAW] = gp.Roi((0, 0), (4, 4))
    with gp.build(source):
        batch = source.request_batch(request)
    assert isinstance(batch[RAW].data, np.ndarray)
    pipeline = source + nodes["InvertIntensities"](RAW)
    with gp.build(pipeline):
        inverted = pipeline.request_batch(request)
    np.testing.assert_array_equal(inverted[RAW].data, 1 - batch[RAW].data)
