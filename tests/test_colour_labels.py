"""The hand colour labels of the demo crops join the outlier evaluation as its docstring says."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import bench_script

PALETTE = {"white", "silver", "grey", "black", "red", "blue", "green", "yellow", "orange", "brown", "beige",
           "pink", "purple"}


@pytest.fixture(scope="module")
def ev():
    return bench_script("outliers_eval")


@pytest.fixture(scope="module")
def hand(ev):
    return pd.read_csv(ev.LABELS)


def test_labels_are_unique_real_crops_in_the_palette(ev, hand):
    demo = set(pd.read_csv(ev.DEMO / "labels.csv")["path"])
    assert hand["path"].is_unique
    assert set(hand["path"]) <= demo
    assert set(hand["colour"]) <= PALETTE
    assert set(hand["part"]) <= set(ev.PARTS)


def test_later_labels_do_not_move_a_crop_to_the_other_part(ev, hand):
    """Rows added after the 600-crop sample carry the part the path hash gives, so the parts keep their images."""
    first = hand[hand["sample"].str.startswith("600")]
    labelled = dict(zip(first["path"], first["part"]))
    later = hand[~hand["sample"].str.startswith("600") & (hand["sample"] != ev.DEV_MOTORBIKES)]
    assert len(later) == 476
    assert all(ev._part_of(p, labelled) == part for p, part in zip(later["path"], later["part"]))
    # the colour classes the evaluation reads: every non-motorbike-sample row, with silver and grey as one
    used = hand[hand["sample"] != ev.DEV_MOTORBIKES]
    assert len(used) == 448 + 476
    counts = used[used["part"] == "held-out"]["colour"].replace({"silver": "silver/grey", "grey": "silver/grey"})
    assert counts.value_counts()["red"] == 15 + 115
