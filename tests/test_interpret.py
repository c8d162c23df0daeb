"""Cluster facts and automatic drafts on a fixture with known colours, classes, light and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from descluster.errors import ParameterError
from descluster.interpret import centroid_distances, cluster_facts, colour_name, describe, light_cue, sample_colours
from descluster.results import Choice, ReducedSpace, RunResult, SpaceId


def _result(quality_columns=("colour", "mean_luminance")) -> RunResult:
    # cluster 0: 10 bright white vans; cluster 1: 5 dark black cars; cluster 2: 5 mixed colours
    labels = np.array([0] * 10 + [1] * 5 + [2] * 5)
    colours = ["white"] * 8 + ["red"] * 2 + ["black"] * 5 + ["red", "blue", "green", "grey", "white"]
    luma = [180.0] * 10 + [30.0] * 5 + [80.0] * 5
    classes = ["minivan"] * 6 + ["moving van"] * 3 + ["cab"] + ["sports car"] * 5 + ["jeep"] * 5
    vtype = ["van"] * 9 + ["car"] + ["car"] * 5 + ["car", "truck", "bus", "van", "bike"]
    quality = pd.DataFrame({quality_columns[0]: colours, quality_columns[1]: luma,
                            "width": [200] * 15 + [100] * 5, "height": [100] * 20})
    imagenet = pd.DataFrame({"top1_class": classes, "top1_prob": 0.6,
                             "vehicle_share": [0.9] * 15 + [0.2] * 5})
    X = np.zeros((20, 2), dtype=np.float32)
    X[:10, 0] = np.arange(10)  # cluster 0 spread along x: distances 0..4.5 from its mean 4.5
    X[10:15] = [5.0, 5.0]
    X[15:] = [[-10, 0], [-10, 2], [-10, 4], [-10, 6], [-10, 8]]
    space = ReducedSpace(SpaceId.single("d", "none"), X, np.array([0.6, 0.4]), 2, 0.9)
    choice = Choice(SpaceId.single("d", "none"), "kmeans", 3, labels, "fixed", pd.DataFrame({"k": [3]}))
    return RunResult(paths=[f"img/{i}.jpg" for i in range(20)], spaces={space.key: space},
                     choices={choice.key: choice}, study=pd.DataFrame(), comparison=pd.DataFrame(),
                     recommended=choice.key, recommendation="", per_descriptor={"d": choice.key},
                     quality=quality, imagenet=imagenet, labels=pd.DataFrame({"vehicle_type": vtype}))


def test_drafts_name_colours_classes_light_and_purity():
    facts = cluster_facts(_result()).set_index("cluster")
    assert facts["size"].tolist() == [10, 5, 5]
    np.testing.assert_allclose(facts["share"], [0.5, 0.25, 0.25])
    d0 = facts.loc[0, "description"]
    assert d0.startswith("Mostly white vehicles (minivan 60%, moving van 30%), bright daylight")
    assert "90% of images share one vehicle_type (van)" in d0
    assert "Typical size 200×100 px" in d0
    d1 = facts.loc[1, "description"]
    assert "mostly black vehicles (sports car 100%)" in d1.lower() and "night-like" in d1
    d2 = facts.loc[2, "description"]
    assert d2.startswith("Vehicles of mixed colours (red 20%, blue 20%, green 20%), ImageNet top-1 jeep 100%")
    assert "dim light" in d2 and "20% of images share one vehicle_type" in d2
    assert "ImageNet sees a vehicle in only 20% of images" in d2
    assert facts.loc[0, "colour"] == "white" and facts.loc[0, "colour_share"] == pytest.approx(0.8)
    assert facts.loc[0, "aspect"] == pytest.approx(2.0) and facts.loc[2, "aspect"] == pytest.approx(1.0)
    assert facts.loc[1, "luminance"] == pytest.approx(30.0)
    assert facts.loc[0, "dist_median"] == pytest.approx(2.5)  # |0..9 - 4.5| -> median 2.5
    assert facts.loc[1, "dist_p90"] == pytest.approx(0.0)


def test_alternative_column_names_and_0_1_luminance():
    r = _result(("colour_name", "luminance_mean"))
    r.quality["luminance_mean"] /= 255.0
    facts = cluster_facts(r).set_index("cluster")
    assert facts.loc[0, "luminance"] == pytest.approx(180.0)
    assert facts.loc[0, "colour"] == "white"


def test_without_tables_and_noise():
    r = _result()
    r.quality = r.imagenet = r.labels = None
    r.choices[r.recommended].labels = np.array([-1] * 10 + [1] * 5 + [2] * 5)
    facts = cluster_facts(r)
    assert facts["cluster"].tolist() == [-1, 1, 2]
    assert facts["description"].iloc[0].startswith("Noise (no cluster)")
    assert "colour" not in facts.columns


def test_colour_and_light_helpers():
    assert colour_name((250, 250, 250)) == "white"
    assert colour_name((200, 20, 25)) == "red"
    assert colour_name((10, 10, 10)) == "black"
    assert [light_cue(v) for v in (200, 110, 80, 10)] == ["bright daylight", "bright daylight", "dim light",
                                                          "night-like"]


def test_sample_colours_reads_thumbnails(tmp_path):
    from PIL import Image

    from descluster.io.images import ImageSource

    for i, rgb in enumerate([(240, 240, 240), (200, 20, 20)]):
        Image.new("RGB", (40, 30), rgb).save(tmp_path / f"{i}.png")
    names = sample_colours(ImageSource(tmp_path), ["0.png", "1.png", "missing.png"], np.array([0, 1, 1]))
    assert names.to_dict() == {0: "white", 1: "red"}  # the missing image is skipped


def test_centroid_distances_with_given_centroids():
    X = np.array([[0, 0], [2, 0], [10, 10]], dtype=np.float32)
    d = centroid_distances(X, np.array([0, 0, 1]), np.array([[1, 0], [10, 7]], dtype=np.float32))
    np.testing.assert_allclose(d, [1, 1, 3])
    with pytest.raises(ParameterError, match="labels has 2"):
        centroid_distances(X, np.array([0, 1]))


def test_unknown_key():
    with pytest.raises(ParameterError, match="key='nope'"):
        cluster_facts(_result(), key="nope")
    assert describe({"cluster": 0}) == "Images."
