"""The one colour palette: names, reference values and the object-naming rule, with known answers."""

import numpy as np
import pytest

from descluster.errors import ParameterError
from descluster.palette import (COLOUR_NAMES, colour_name, lit_lightness, name_from_shares, name_object,
                                palette_shares, pixel_name_index, prototypes, weighted_quantile)


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


def _shares(**kw):
    return np.array([kw.get(n, 0.0) for n in COLOUR_NAMES])


def test_palette_shares_known_answer():
    px = np.array([(20, 20, 22)] * 30 + [(245, 245, 245)] * 50 + [(200, 30, 30)] * 20, dtype=np.uint8)
    m = palette_shares(px, np.ones(100))
    assert m.sum() == pytest.approx(1.0)
    assert (m[COLOUR_NAMES.index("black")], m[COLOUR_NAMES.index("white")], m[COLOUR_NAMES.index("red")]) == \
        pytest.approx((0.3, 0.5, 0.2))
    assert not palette_shares(px, np.zeros(100)).any()
    assert lit_lightness(px, np.ones(100)) == pytest.approx(96.5, abs=0.5)  # the lit face: the white body (L* of 245)
    assert np.isnan(lit_lightness(px[:30], np.ones(30)))  # all black


def test_name_from_shares_black_only_with_half_the_pixels():
    # grey loads under shade: black 44% (tyres, glass, shadow), neutrals 41% -> a neutral, named by the lit face
    m = _shares(black=0.44, grey=0.24, silver=0.11, white=0.06, brown=0.08, beige=0.04, red=0.03)
    assert name_from_shares(m, 88.0)[0] == "silver" and name_from_shares(m, 60.0)[0] == "grey"
    assert name_from_shares(m, 97.0)[:2] == ("white", pytest.approx(0.41))
    assert name_from_shares(_shares(black=0.62, grey=0.3, white=0.08), 70.0)[:2] == ("black", pytest.approx(0.62))
    assert name_from_shares(_shares(pink=0.6, grey=0.4), 80.0)[0] == "pink"
    assert name_from_shares(_shares(grey=0.3, silver=0.5), float("nan"))[0] == "silver"  # no lit face: largest
    assert name_from_shares(np.zeros(len(COLOUR_NAMES)), 50.0) == ("", 0.0, "", 0.0)
    with pytest.raises(ParameterError, match="one per colour name"):
        name_from_shares(np.ones(3), 50.0)


def test_name_object_is_name_from_shares_of_its_pixels():
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, size=(200, 3)).astype(np.uint8)
    w = rng.uniform(0, 1, 200)
    assert name_object(px, w) == name_from_shares(palette_shares(px, w), lit_lightness(px, w))
