"""Cluster facts and automatic drafts on fixtures with known colours, classes, light, folders and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from descluster.errors import ParameterError
from descluster.interpret import (centroid_distances, cluster_facts, describe, distinctive_words, light_cue,
                                  sample_colours)
from descluster.results import Choice, ReducedSpace, RunResult, SpaceId


def _run(labels, quality, imagenet, paths=None, label_table=None, X=None) -> RunResult:
    n = len(labels)
    X = np.zeros((n, 2), dtype=np.float32) if X is None else X
    space = ReducedSpace(SpaceId.single("d", "none"), X, np.array([0.6, 0.4]), 2, 0.9)
    choice = Choice(SpaceId.single("d", "none"), "kmeans", int(labels.max()) + 1, labels, "fixed",
                    pd.DataFrame({"k": [3]}))
    return RunResult(paths=paths or [f"img/{i}.jpg" for i in range(n)], spaces={space.key: space},
                     choices={choice.key: choice}, study=pd.DataFrame(), comparison=pd.DataFrame(),
                     recommended=choice.key, recommendation="", per_descriptor={"d": choice.key},
                     quality=quality, imagenet=imagenet, labels=label_table)


def _result(quality_columns=("colour", "mean_luminance")) -> RunResult:
    # cluster 0: 10 bright white vans; cluster 1: 5 dark black cars; cluster 2: 5 mixed colours
    labels = np.array([0] * 10 + [1] * 5 + [2] * 5)
    colours = ["white"] * 8 + ["red"] * 2 + ["black"] * 5 + ["red", "blue", "green", "grey", "white"]
    luma = [180.0] * 10 + [30.0] * 5 + [80.0] * 5
    classes = ["minivan"] * 6 + ["moving van"] * 3 + ["cab"] + ["sports car"] * 5 + ["imagenet_609"] * 5
    vtype = ["van"] * 9 + ["car"] + ["car"] * 5 + ["car", "truck", "bus", "van", "bike"]
    quality = pd.DataFrame({quality_columns[0]: colours, quality_columns[1]: luma,
                            "width": [200] * 15 + [100] * 5, "height": [100] * 20})
    imagenet = pd.DataFrame({"top1_class": classes, "top1_prob": 0.6,
                             "vehicle_share": [0.9] * 15 + [0.2] * 5})
    X = np.zeros((20, 2), dtype=np.float32)
    X[:10, 0] = np.arange(10)  # cluster 0 spread along x: distances 0..4.5 from its mean 4.5
    X[10:15] = [5.0, 5.0]
    X[15:] = [[-10, 0], [-10, 2], [-10, 4], [-10, 6], [-10, 8]]
    return _run(labels, quality, imagenet, label_table=pd.DataFrame({"vehicle_type": vtype}), X=X)


def test_drafts_name_the_majority_colour_classes_light_and_purity():
    facts = cluster_facts(_result()).set_index("cluster")
    assert facts["size"].tolist() == [10, 5, 5]
    np.testing.assert_allclose(facts["share"], [0.5, 0.25, 0.25])
    d0 = facts.loc[0, "description"]
    assert d0.startswith("Mostly white vehicles (white 80%, red 20%), bright daylight; ImageNet: minivan 60%, moving van 30%.")
    assert "90% of images share one vehicle_type (van)" in d0 and "typical size 200×100 px" in d0
    d1 = facts.loc[1, "description"]
    assert d1.startswith("Mostly black vehicles (black 100%), night-like; ImageNet: sports car 100%.")
    d2 = facts.loc[2, "description"]
    assert d2.startswith("Vehicles of mixed colours, most often red (red 20%, blue 20%, green 20%), dim light")
    assert "ImageNet: jeep 100%" in d2 and "imagenet_" not in " ".join(facts["description"])  # old placeholders named
    assert facts.loc[0, "colour"] == "white" and facts.loc[0, "colour_share"] == pytest.approx(0.8)
    assert facts.loc[0, "aspect"] == pytest.approx(2.0) and facts.loc[2, "aspect"] == pytest.approx(1.0)
    assert facts.loc[1, "luminance"] == pytest.approx(30.0)
    assert facts.loc[0, "dist_median"] == pytest.approx(2.5)  # |0..9 - 4.5| -> median 2.5
    assert facts.loc[1, "dist_p90"] == pytest.approx(0.0)
    assert not facts["no_vehicle"].any()  # 3 clusters: 0.2 is not far enough below 0.9 to be "no vehicle"


def test_distinctive_words_are_over_represented_with_both_shares():
    facts = cluster_facts(_result()).set_index("cluster")
    # the vans' sentence already says white and daylight; what else sets them apart is minivan (60% vs 30%)
    assert facts.loc[0, "distinctive"].startswith("minivan 60% (30% overall)")
    assert "Sets it apart: minivan 60% (30% overall)" in facts.loc[0, "description"]
    assert "white" not in facts.loc[0, "distinctive"]


def test_ctfidf_known_answer():
    # two clusters of 4: folder a/ only in cluster 0, colour red in both
    words = {"folder": pd.Series(["a/", "a/", "a/", "a/", "b/", "b/", "c/", "c/"]),
             "colour": pd.Series(["red"] * 8)}
    out = distinctive_words(words, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    facet, word, score, share, overall = out[0][0]
    # tf = 4 / 8 words of cluster 0; A = 8 words per cluster; f(a/) = 4 -> 0.5 * log(1 + 8 / 4)
    assert (facet, word, share, overall) == ("folder", "a/", 1.0, 0.5) and score == pytest.approx(0.5 * np.log(3))
    assert all(w != "red" for _, w, *_ in out[0] + out[1])  # in every cluster: sets none apart


def test_no_vehicle_cluster_is_named_so():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 20)
    shares = np.clip(rng.normal(0.8, 0.05, labels.size), 0, 1)
    shares[labels == 7] = rng.uniform(0.0, 0.03, 20)  # road crops: the head sees no vehicle
    quality = pd.DataFrame({"colour": ["grey"] * labels.size, "mean_luminance": 150.0})
    imagenet = pd.DataFrame({"top1_class": ["cab"] * 140 + ["manhole cover"] * 20, "vehicle_share": shares})
    facts = cluster_facts(_run(labels, quality, imagenet)).set_index("cluster")
    assert facts["no_vehicle"].tolist() == [False] * 7 + [True]
    d = facts.loc[7, "description"]
    assert d.startswith("No vehicle: mostly grey images (grey 100%), median ImageNet vehicle share 2%")
    assert "manhole cover 100% (12% overall)" in d and "vehicles" not in d


def test_folder_sets_a_cluster_apart():
    labels = np.array([0] * 6 + [1] * 6)
    paths = [f"cam1/{i}.jpg" for i in range(6)] + [f"cam2/{i}.jpg" for i in range(3)] + [f"cam1/x{i}.jpg" for i in range(3)]
    quality = pd.DataFrame({"colour": ["white"] * 12})
    facts = cluster_facts(_run(labels, quality, None, paths=paths)).set_index("cluster")
    assert facts.loc[1, "distinctive"] == "folder cam2/ 50% (25% overall)"
    assert facts.loc[0, "folder"] == "cam1/" and facts.loc[0, "folder_share"] == 1.0


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


def test_light_cue():
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
    assert describe({"cluster": 0}) == "Images."  # no vehicle evidence at all: nothing claims vehicles
    assert describe({"cluster": 0, "vehicle_median": float("nan")}) == "Images."
    assert describe({"cluster": 0, "vehicle_median": 0.8}) == "Vehicles."


def test_cluster_colour_comes_from_the_object_pixels_not_a_count_of_names():
    from descluster.outliers.pixels import PALETTE_SHARE_COLUMNS
    from descluster.palette import COLOUR_NAMES

    # cluster 0: grey loads whose shade tips 6 of 10 images to "black" (black 0.52 each), while the pooled
    # palette has black 0.448 and neutrals 0.504 and a lit face at L* 86: silver, not black.
    # cluster 1: black cars, black 0.8 of every palette.
    labels = np.array([0] * 10 + [1] * 5)
    rows = [dict(black=0.52, grey=0.3, silver=0.1, brown=0.08)] * 6 + [dict(black=0.34, grey=0.35, silver=0.2,
                                                                           white=0.11)] * 4
    rows += [dict(black=0.8, grey=0.2)] * 5
    pal = pd.DataFrame([[r.get(n, 0.0) for n in COLOUR_NAMES] for r in rows], columns=PALETTE_SHARE_COLUMNS)
    quality = pd.concat([pd.DataFrame({"colour": ["black"] * 6 + ["grey"] * 4 + ["black"] * 5,
                                       "colour_lit_lightness": [86.0] * 10 + [60.0] * 5,
                                       "mean_luminance": 150.0}), pal], axis=1)
    imagenet = pd.DataFrame({"top1_class": "trailer truck", "vehicle_share": [0.9] * 15})
    facts = cluster_facts(_run(labels, quality, imagenet)).set_index("cluster")
    assert facts.loc[0, "colour"] == "silver" and facts.loc[0, "colour_basis"] == "object pixels"
    assert facts.loc[0, "palette_black"] == pytest.approx(0.448)
    assert facts.loc[0, "colour_share"] == pytest.approx(0.504)  # white + silver + grey
    assert facts.loc[0, "description"].startswith(
        "Mostly silver vehicles (white, silver and grey 50% of the object pixels, lit face L* 86; images named "
        "black 60%, grey 40%)")
    assert "black" not in facts.loc[0, "description"].split(";")[0]
    assert facts.loc[1, "description"].startswith("Mostly black vehicles (black 80% of the object pixels; images "
                                                  "named black 100%)")


def test_a_mixed_cluster_says_its_colour_word_comes_from_the_object_pixels():
    """The demo's motorbike cluster: neutral object pixels (silver by the lit face) while the most frequent
    image name is black; the sentence must not claim silver is the most frequent name."""
    facts = {"cluster": 5, "colour": "silver", "colour_share": 0.41, "colour_basis": "object pixels",
             "colour_lit_lightness": 74.4, "colours": "black 46%, silver 36%, grey 12%", "vehicle_median": 0.7}
    d = describe(facts)
    assert d.startswith("Vehicles of mixed colours, their object pixels leaning silver (white, silver and grey 41% "
                        "of the object pixels, lit face L* 74; images named black 46%, silver 36%, grey 12%)")
    assert "most often" not in d
    facts["colour_share"] = 0.6  # dominant: "mostly", from the same pixels
    assert describe(facts).startswith("Mostly silver vehicles (white, silver and grey 60% of the object pixels")
