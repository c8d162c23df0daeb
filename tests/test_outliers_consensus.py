"""Tests of the consensus of detectors and pixel rules."""

import numpy as np
import pandas as pd
import pytest

from descluster.errors import ParameterError
from descluster.outliers.consensus import find_outliers


def _spaces(seed=0):
    rng = np.random.default_rng(seed)
    n = 300
    far = 12.0 + 8.0 * np.eye(5, 6) * np.arange(1, 6)[:, None]
    a = np.vstack([rng.normal(scale=0.5, size=(n, 6)), far]).astype(np.float32)
    b = np.vstack([rng.normal(scale=0.5, size=(n, 4)), far[:, :4] * 1.5]).astype(np.float32)
    return {"osnet": a, "vdc_type": b}, [f"img/{i}.jpg" for i in range(n + 5)]


def test_exactly_the_far_points_flagged_and_ranked_first():
    spaces, paths = _spaces()
    rep = find_outliers(spaces, paths, progress=False)
    t = rep.table
    assert t["path"].tolist() == paths
    np.testing.assert_array_equal(np.flatnonzero(t["flagged"]), np.arange(300, 305))
    assert set(t.loc[t["flagged"] == 1, "rank"]) == {1, 2, 3, 4, 5}
    assert sorted(t["rank"]) == list(range(1, 306))
    assert "knn:osnet" in t.loc[300, "flagged_by"] and "knn:vdc_type" in t.loc[300, "flagged_by"]
    assert "far from all neighbours in osnet and vdc_type" in t.loc[300, "reason"]
    for col in ("knn_osnet", "lof_osnet", "iforest_osnet", "knn_vdc_type", "n_flags", "duplicate_group", "reason"):
        assert col in t.columns
    assert {"knn:osnet", "lof:vdc_type"} <= set(rep.thresholds)
    # the rule in words says what the code does: any detector, in at least 2 of the 2 kinds
    assert "some descriptor detector (knn, lof, iforest) flags it in at least 2 of the 2 descriptor kinds" in rep.flag_rule
    assert "3 descriptor kinds" not in rep.flag_rule and "of the 6" not in rep.flag_rule


def test_duplicate_block_is_grouped_not_flagged():
    spaces, paths = _spaces(1)
    spaces = {k: np.vstack([v, np.repeat(v[:1], 10, axis=0)]) for k, v in spaces.items()}
    paths = paths + [f"dup/{i}.jpg" for i in range(10)]
    t = find_outliers(spaces, paths, progress=False).table
    g = t["duplicate_group"].to_numpy()
    assert g[0] >= 0 and (g[-10:] == g[0]).all() and (g[1:300] == -1).all()
    assert t["flagged"].iloc[-10:].sum() == 0 and t["flagged"].iloc[0] == 0


def test_pixel_rules_flag_alone_no_vehicle_is_advisory():
    spaces, paths = _spaces(2)
    n = len(paths)
    rng = np.random.default_rng(0)
    quality = pd.DataFrame({
        "path": paths, "readable": True, "error": "", "width": 100, "height": 100, "aspect": 1.0,
        "mean_luminance": rng.normal(130, 10, n), "object_p95_luminance": rng.normal(210, 10, n),
        "saturated_share": 0.0, "object_saturated_share": 0.0, "sharpness": rng.lognormal(-1.0, 0.3, n),
        "entropy": rng.normal(7, 0.2, n), "object_entropy": rng.normal(7, 0.2, n),
        "channel_spread_p95": rng.normal(40, 5, n), "greyscale": False,
        "sha1": [f"{i:040x}" for i in range(n)], "phash": [f"{i * 7919:016x}" for i in range(n)],
    })
    quality.loc[3, ["mean_luminance", "object_p95_luminance"]] = [8.0, 20.0]
    quality.loc[4, "object_saturated_share"] = 0.71
    quality.loc[6, ["mean_luminance", "object_p95_luminance"]] = [40.0, 180.0]  # night-like, object visible
    quality.loc[5, ["readable", "error"]] = [False, "cannot decode image (truncated JPEG)"]
    imagenet = pd.DataFrame({"path": [p.replace("/", "\\") for p in paths], "vehicle_share": [0.03] + [0.9] * (n - 1)})
    t = find_outliers(spaces, paths, quality=quality, imagenet=imagenet, progress=False).table
    assert t.loc[3, "reason"] == "dark, object hidden: its brightest 5% at luma 20/255"
    assert t.loc[4, "reason"] == "over-exposed: 71% of the object clipped"
    assert t.loc[6, "reason"] == ""  # dark frame, visible object: a property, not a defect
    assert t.loc[5, "reason"].startswith("unreadable:")
    assert t.loc[0, "reason"] == "no vehicle: 3%" and t.loc[0, "flagged_by"] == "pixel:no-vehicle"
    flagged = set(np.flatnonzero(t["flagged"]))
    # no vehicle is advisory; the far points 300..304 show a vehicle (share 0.9): rare vehicles, not junk
    assert flagged == {3, 4, 5}
    assert "pixel_dark" in t.columns
    assert "vehicle share is under 0.5" in find_outliers(spaces, paths, quality=quality, imagenet=imagenet,
                                                         progress=False).flag_rule


def test_vehicle_evidence_vetoes_descriptor_agreement_and_its_absence_needs_two_kinds():
    spaces, paths = _spaces(3)
    n = len(paths)
    share = np.full(n, 0.9)
    share[300:302] = 0.9  # far in both kinds, a vehicle: a rare vehicle
    share[302:305] = 0.01  # far in both kinds, no vehicle (under the uniform-head share 0.05): junk
    share[0] = 0.01  # no vehicle, but not far in any kind: ImageNet alone does not flag
    imagenet = pd.DataFrame({"path": paths, "vehicle_share": share})
    rep = find_outliers(spaces, paths, imagenet=imagenet, progress=False)
    assert set(np.flatnonzero(rep.table["flagged"])) == {302, 303, 304}
    assert "2 held back" in rep.flag_rule and "under 0.05" in rep.flag_rule
    rep = find_outliers(spaces, paths, imagenet=imagenet, progress=False, vehicle_veto=None)
    assert set(np.flatnonzero(rep.table["flagged"])) == {300, 301, 302, 303, 304}
    with pytest.raises(ParameterError, match="vehicle_veto"):
        find_outliers(spaces, paths, imagenet=imagenet, progress=False, vehicle_veto=1.5)


def test_rows_mismatch_is_named():
    spaces, paths = _spaces()
    with pytest.raises(ParameterError, match="osnet.*305.*304"):
        find_outliers(spaces, paths[:-1], progress=False)
    with pytest.raises(ParameterError, match="detectors"):
        find_outliers(spaces, paths, detectors=("nope",), progress=False)


def test_descriptor_clauses_known_answers():
    from descluster.outliers.consensus import descriptor_clauses

    n_kinds = np.array([3, 3, 2, 2, 1, 0])
    shares = np.array([0.9, 0.2, 0.01, 0.3, 0.01, np.nan])
    c = descriptor_clauses(n_kinds, 3, shares, min_descriptor_kinds=None, no_vehicle_kinds=2, vehicle_veto=0.5,
                           no_vehicle_share=0.05)
    assert c.need_kinds == 3 and c.no_vehicle_kinds == 2
    assert c.by_descriptors.tolist() == [False, True, False, False, False, False]  # row 0 shows a vehicle: held back
    assert c.shows_vehicle.tolist() == [True, False, False, False, False, False]
    assert c.by_no_vehicle.tolist() == [False, False, True, False, False, False]  # 1 kind is not enough for row 4
    off = descriptor_clauses(n_kinds, 3, None, no_vehicle_kinds=None, vehicle_veto=None)  # shares unknown
    assert off.by_descriptors.tolist() == [True, True, False, False, False, False] and not off.by_no_vehicle.any()
    assert not descriptor_clauses(n_kinds, 0, shares).by_descriptors.any()  # no kind judged: nothing fires
