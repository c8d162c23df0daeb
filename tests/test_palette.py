"""The one colour palette: names, reference values and the object-naming rule, with known answers."""

import numpy as np
import pytest

from descluster.errors import ParameterError
from descluster.palette import (COLOUR_NAMES, colour_name, name_object, pixel_name_index, prototypes,
                                weighted_quantile)


def test_thirteen_names_and_survey_references():
    assert set(COLOUR_NAMES) == {"white", "black", "grey", "silver", "red", "blue", "green", "yellow", "orange",
                                 "brown", "beige", "pink", "purple"}
    protos = {entry: rgb for _, entry, rgb in prototypes()}
    assert protos["red"] == (229, 0, 0) and protos["pink"] == (255, 129, 192)  # xkcd survey hex e50000, ff81c0
    assert "dark pink" not in protos and "light grey" not in protos
    assert {name for name, _, _ in prototypes()} == set(COLOUR_NAMES)


@pytest.mark.parametrize("rgb, name", [
    ((255, 192, 203), "pink"), ((255, 120, 180), "pink"), ((180, 30, 35), "red"), ((120, 20, 25), "red"),
    ((30, 70, 170), "blue"), ((20, 30, 70), "blue"), ((40, 130, 60), "green"), ((230, 200, 40), "yellow"),
    ((230, 120, 30), "orange"), ((110, 75, 45), "brown"), ((215, 195, 160), "beige"), ((120, 40, 140), "purple"),
    ((245, 245, 245), "white"), ((190, 192, 195), "silver"), ((128, 128, 130), "grey"), ((15, 15, 18), "black"),
])
def test_known_colours(rgb, name):
    assert colour_name(rgb) == name
    assert COLOUR_NAMES[int(pixel_name_index(np.array(rgb, dtype=np.uint8)))] == name  # lookup table agrees


def test_lookup_table_agrees_with_exact_naming_on_a_grid():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(300, 3))
    lut = pixel_name_index(rgb.astype(np.uint8))
    exact = np.array([COLOUR_NAMES.index(colour_name(c)) for c in rgb])
    assert (lut == exact).mean() > 0.9  # quantised to 32 levels: only colours near a boundary may differ


def test_pink_square_is_named_pink():
    img = np.full((32, 32, 3), (40, 160, 60), dtype=np.uint8)  # on green
    img[8:24, 8:24] = (255, 150, 190)
    yy, xx = np.mgrid[0:32, 0:32]
    w = np.exp(-(((yy - 15.5) / 8) ** 2 + ((xx - 15.5) / 8) ** 2) / 2).ravel()
    name, share, second, _ = name_object(img.reshape(-1, 3), w)
    assert (name, second) == ("pink", "green") and share > 0.5


def test_dark_glass_does_not_make_a_white_van_black():
    # 40% dark glass and tyres, 60% white body: black needs a majority
    px = np.array([(20, 20, 22)] * 40 + [(245, 245, 245)] * 45 + [(200, 202, 204)] * 15, dtype=np.uint8)
    assert name_object(px, np.ones(100))[0] == "white"
    px = np.array([(20, 20, 22)] * 60 + [(245, 245, 245)] * 40, dtype=np.uint8)
    assert name_object(px, np.ones(100))[:2] == ("black", 0.6)


def test_neutral_named_by_its_lit_face():
    # a silver car: shaded sides grey, lit roof silver; the 95th percentile of lightness decides
    px = np.array([(128, 128, 130)] * 60 + [(192, 194, 196)] * 40, dtype=np.uint8)
    assert name_object(px, np.ones(100))[0] == "silver"


def test_hue_beats_neutral_only_when_it_outweighs_it():
    px = np.array([(200, 30, 30)] * 30 + [(245, 245, 245)] * 70, dtype=np.uint8)  # a white van with red lettering
    assert name_object(px, np.ones(100))[0] == "white"
    px = np.array([(200, 30, 30)] * 55 + [(245, 245, 245)] * 45, dtype=np.uint8)
    assert name_object(px, np.ones(100))[0] == "red"


def test_bad_input_and_weighted_quantile():
    with pytest.raises(ParameterError, match="weights has 2"):
        name_object(np.zeros((3, 3), np.uint8), np.ones(2))
    assert name_object(np.zeros((3, 3), np.uint8), np.zeros(3)) == ("", 0.0, "", 0.0)
    assert weighted_quantile(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0]), 0.5) == 3.0
    assert weighted_quantile(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), 0.5) == 2.0
