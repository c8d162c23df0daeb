"""Tests of the threshold strategies."""

import numpy as np
import pytest

from descluster.errors import ParameterError
from descluster.outliers.thresholds import RobustZ, TopShare, robust_z


def test_robust_z_known_values():
    z, med, scale = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert med == 3.0
    assert scale == pytest.approx(1.0 / 0.6745)
    assert z[-1] == pytest.approx(97 * 0.6745)


def test_robust_z_zero_mad_falls_back_to_mean_deviation():
    v = np.array([0.0] * 9 + [1.0])
    z, med, scale = robust_z(v)
    assert scale == pytest.approx(1.253314 * 0.1)
    assert z[-1] > 3.5 and (z[:-1] == 0).all()


def test_robust_threshold_flags_and_describes():
    s = np.r_[np.ones(50), np.full(50, 1.1), 50.0]
    d = RobustZ(3.5, log=True).decide(s)
    assert d.flags.sum() == 1 and d.flags[-1]
    assert d.threshold > 1.1 and "3.5" in d.description and "1 of 101" in d.description


def test_top_share():
    d = TopShare(0.1).decide(np.arange(100.0))
    assert d.flags.sum() == 10 and d.flags[-10:].all()


@pytest.mark.parametrize("bad", [lambda: RobustZ(z=0), lambda: TopShare(0.7)])
def test_bad_parameters(bad):
    with pytest.raises(ParameterError):
        bad()
