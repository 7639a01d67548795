import daskgp as gp


def test_add_centres_rois_like_gunpowder():
    raw, gt = gp.ArrayKey("RAW"), gp.ArrayKey("GT")
    request = gp.BatchRequest()
    request.add(raw, (84, 268, 268))
    request.add(gt, (56, 56, 56))
    assert request[raw].roi == gp.Roi((0, 0, 0), (84, 268, 268))
    assert request[gt].roi == gp.Roi((14, 106, 106), (56, 56, 56))
    assert request.get_total_roi() == gp.Roi((0, 0, 0), (84, 268, 268))


def test_add_with_voxel_size_and_placeholder():
    raw = gp.ArrayKey("RAW")
    request = gp.BatchRequest()
    request.add(raw, (40, 40), voxel_size=(4, 4), placeholder=True)
    assert request[raw].voxel_size == gp.Coordinate(4, 4)
    request.remove_placeholders()
    assert raw not in request


def test_update_with_unions_rois_and_keeps_seed():
    raw, gt = gp.ArrayKey("RAW"), gp.ArrayKey("GT")
    a = gp.BatchRequest(random_seed=7)
    a[raw] = gp.ArraySpec(roi=gp.Roi((0, 0), (10, 10)))
    b = gp.BatchRequest()
    b[raw] = gp.ArraySpec(roi=gp.Roi((5, 5), (10, 10)))
    b[gt] = gp.ArraySpec(roi=gp.Roi((0, 0), (2, 2)))
    merged = a.update_with(b)
    assert merged[raw].roi == gp.Roi((0, 0), (15, 15))
    assert merged[gt].roi == gp.Roi((0, 0), (2, 2))
    assert merged.random_seed == 7
    assert a[raw].roi == gp.Roi((0, 0), (10, 10)), "update_with must not change its operand"


def test_copy_is_deep_and_seed_is_wrapped_to_32_bits():
    raw = gp.ArrayKey("RAW")
    request = gp.BatchRequest(random_seed=2**32 + 5)
    request.add(raw, (10,))
    copy = request.copy()
    copy[raw].roi = gp.Roi((3,), (1,))
    assert request[raw].roi == gp.Roi((0,), (10,))
    assert request.random_seed == 5 and copy.random_seed == 5
