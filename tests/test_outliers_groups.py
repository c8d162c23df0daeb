"""Group outliers: junk that forms its own dense group is flagged as a group, with its reason."""

import numpy as np
import pandas as pd
import pytest

from descluster.errors import ParameterError
from descluster.outliers.consensus import find_outliers
from descluster.outliers.groups import GroupOutlierDetector, top_folder
from descluster.outliers.vehicle import LowVehicleEvidence


def _vehicles_and_block(seed=0, n_clean=900, n_block=100, identical=False):
    """Clean vehicles: 6 Gaussian types; junk: a dense block of (near-)identical background crops (10%)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(6, 16))
    X = np.vstack([centres[i % 6] + rng.normal(size=16) for i in range(n_clean)])
    block = centres.mean(axis=0) + (0.0 if identical else 0.05) * rng.normal(size=(n_block, 16))  # one road texture
    X = np.vstack([X, block]).astype(np.float32)
    shares = np.concatenate([np.clip(rng.normal(0.8, 0.12, n_clean), 0, 1), rng.uniform(0.0, 0.05, n_block)])
    paths = [f"{['bike', 'car', 'truck'][i % 3]}/{i}.jpg" for i in range(n_clean)]
    paths += [f"{['bike', 'car', 'truck'][i % 3]}/bg{i}.jpg" for i in range(n_block)]
    return X, shares, paths


@pytest.mark.parametrize("identical", [True, False])
def test_a_dense_block_of_identical_background_crops_is_flagged_as_a_group(identical):
    X, shares, paths = _vehicles_and_block(identical=identical)
    det = GroupOutlierDetector().fit(X, vehicle_share=shares, paths=paths)
    block = np.arange(900, 1000)
    assert det.flags_[block].all() and not det.flags_[:900].any()
    flagged = det.groups_[det.groups_["flagged"]]
    assert flagged["no_vehicle"].all() and flagged["size"].sum() == 100
    assert det.reasons_[950].startswith("sub-cluster ") and "no vehicle (median vehicle share " in det.reasons_[950]
    assert "no vehicle: median vehicle share <" in det.thresholds_["group:sub-cluster:no-vehicle"]


def test_the_block_is_found_in_the_consensus_though_point_detectors_miss_it():
    X, shares, paths = _vehicles_and_block(1)
    imagenet = pd.DataFrame({"path": paths, "vehicle_share": shares})
    other = (X[:, ::-1] + np.random.default_rng(9).normal(size=X.shape)).astype(np.float32)  # a second kind
    other[900:] = other[900].copy() + 0.05 * np.random.default_rng(8).normal(size=(100, 16))
    t = find_outliers({"cnn": X, "cnn2": other}, paths, imagenet=imagenet, progress=False).table
    block = t.index >= 900
    assert t.loc[block, "flagged"].all() and t.loc[block, "group_flagged"].all()
    assert "group:cnn" in t.loc[950, "flagged_by"] and t.loc[950, "reason"].startswith("junk group: cnn sub-cluster")
    assert not t.loc[block, "flagged_by"].str.contains("knn:").any()  # dense: not far from its neighbours
    assert t.loc[~block, "flagged"].mean() < 0.02


def test_one_cameras_empty_frames_without_imagenet():
    X, _, paths = _vehicles_and_block(2)
    paths = paths[:900] + [f"cam7/frame{i}.jpg" for i in range(100)]  # all from one camera folder
    det = GroupOutlierDetector().fit(X, paths=paths)
    assert det.flags_[900:].all() and not det.flags_[:900].any()
    assert "near-identical frames of one folder (cam7/ 100%)" in det.reasons_[900]


def test_tight_groups_spread_over_folders_are_not_flagged_without_other_evidence():
    X, _, paths = _vehicles_and_block(3)  # the block's paths are spread over bike/, car/, truck/
    assert not GroupOutlierDetector().fit(X, paths=paths).flags_.any()


def test_given_clusters_are_judged_too():
    X, shares, paths = _vehicles_and_block(4)
    clusters = np.r_[np.arange(900) % 6, np.full(100, 6)]
    det = GroupOutlierDetector(n_groups=1).fit(X, vehicle_share=shares, clusters=clusters)  # one sub-cluster: all
    assert det.flags_[900:].all() and not det.flags_[:900].any()
    row = det.groups_[det.groups_["flagged"]].iloc[0]
    assert (row["level"], row["group"], row["size"]) == ("cluster", 6, 100)


@pytest.mark.parametrize("block_share, flagged", [(None, True), (0.02, True), (0.9, False)])
def test_a_texture_free_group_is_junk_unless_it_shows_vehicles(block_share, flagged):
    """A smooth block (low sharpness and entropy): fog or sky frames when nothing says vehicle, but a block of
    trailers' flat sides when the ImageNet head sees vehicles in it: never flagged for low information then."""
    X, shares, paths = _vehicles_and_block(6)
    rng = np.random.default_rng(6)
    sharp = np.r_[np.exp(rng.normal(np.log(0.1), 0.3, 900)), np.full(100, 0.004)]
    entropy = np.r_[rng.normal(7.0, 0.3, 900), np.full(100, 3.0)]
    if block_share is not None:
        shares[900:] = block_share
    det = GroupOutlierDetector().fit(X, vehicle_share=None if block_share is None else shares, sharpness=sharp,
                                     entropy=entropy)
    assert det.flags_[900:].all() if flagged else not det.flags_[900:].any()
    assert not det.flags_[:900].any()
    if flagged:
        assert "low information (median entropy 3.0 bits" in det.reasons_[950]
    assert "median vehicle share under 0.5 (or unknown)" in det.thresholds_["group:sub-cluster:low-information"]


def test_parameters_checked_and_helpers():
    X, shares, paths = _vehicles_and_block(5, n_clean=60, n_block=10)
    with pytest.raises(ParameterError, match="vehicle_share has 3"):
        GroupOutlierDetector().fit(X, vehicle_share=shares[:3])
    with pytest.raises(ParameterError, match="min_group_size"):
        GroupOutlierDetector(min_group_size=1).fit(X)
    with pytest.raises(ParameterError, match="evidence"):
        GroupOutlierDetector(evidence="strict").fit(X)
    assert [top_folder(p) for p in ("cam3/x.jpg", "./cam3/x.jpg", "x.jpg", "a\\b.jpg")] == ["cam3", "cam3", "", "a"]
    from sklearn.base import clone

    assert clone(GroupOutlierDetector(z=3.0)).get_params()["z"] == 3.0
    v = LowVehicleEvidence().decide(np.r_[np.full(20, 0.8) + np.linspace(0, 0.1, 20), 0.01, np.nan])
    assert v.flags.tolist() == [False] * 20 + [True, False]
