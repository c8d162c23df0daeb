"""The 1,000 ImageNet-1k class names ship as data; no placeholder reaches a table."""

import numpy as np
import pandas as pd
import pytest

from descluster.extract.imagenet import (IMAGENET_NAMES, VEHICLE_CLASSES, class_name, imagenet_class_names,
                                         readable_class_names, summarise_probs, summary_frame)


def test_a_thousand_distinct_names_in_the_standard_order():
    names = imagenet_class_names()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[1], names[407], names[817], names[999]) == (
        "tench", "goldfish", "ambulance", "sports car", "toilet tissue")
    assert names[134] == "crane (bird)" and names[517] == "crane (machine)"
    assert all(IMAGENET_NAMES[i] == n for i, n in VEHICLE_CLASSES.items())  # the vehicle list agrees with the file


def test_summary_frame_writes_words_for_every_class():
    probs = np.zeros((3, 1000))
    probs[0, 482], probs[1, 640], probs[2, 817] = 1.0, 1.0, 1.0
    table = summary_frame(["a.jpg", "b.jpg", "c.jpg"], summarise_probs(probs, top=2))
    assert table["top1_class"].tolist() == ["cassette player", "manhole cover", "sports car"]
    assert not table.astype(str).apply(lambda c: c.str.contains("imagenet_")).any().any()
    assert table["vehicle_share"].tolist() == [0.0, 0.0, 1.0]


def test_old_placeholders_are_translated():
    s = pd.Series(["imagenet_482", "cab", "imagenet_640 or so", ""])
    assert readable_class_names(s).tolist() == ["cassette player", "cab", "manhole cover or so", ""]
    with pytest.raises(ValueError, match="1000"):
        class_name(1000)


def test_case_loading_translates_an_old_imagenet_table(tmp_path):
    from descluster.case import load_case

    (tmp_path / "descriptors").mkdir()
    (tmp_path / "meta").mkdir()
    np.save(tmp_path / "descriptors" / "d.npy", np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    pd.DataFrame({"paths": ["a.jpg", "b.jpg", "c.jpg"]}).to_csv(tmp_path / "images_paths.csv", index=False)
    pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "vehicle_share": [0.1, 0.2, 0.3],
                  "top1_class": ["imagenet_482", "cab", "imagenet_405"]}).to_csv(tmp_path / "meta" / "imagenet.csv",
                                                                                index=False)
    case = load_case(tmp_path)
    assert case.imagenet["top1_class"].tolist() == ["cassette player", "cab", "airship"]
