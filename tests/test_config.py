import pytest

from descluster.config import RunConfig
from descluster.errors import ParameterError


def test_defaults_sweep_2_to_30():
    c = RunConfig()
    assert c.ks == list(range(2, 31))
    assert set(c.full_preprocessings) <= set(c.preprocessings)


@pytest.mark.parametrize("kw, word", [
    ({"k_min": 1}, "k_min"), ({"k_min": 5, "k_max": 4}, "k_max"), ({"variance_target": 1.5}, "variance_target"),
    ({"preprocessings": ("standard", "zscore")}, "zscore"), ({"algorithms": ("kmeans", "spectral")}, "spectral"),
    ({"embedding": "mds"}, "embedding"), ({"preprocessings": ("l2",), "full_preprocessings": ("standard",)}, "standard"),
])
def test_bad_parameters_are_named(kw, word):
    with pytest.raises(ParameterError, match=word):
        RunConfig(**kw)


def test_toml_round_trip_and_unknown_key(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('k_max = 12\npreprocessings = ["standard", "l2"]\nseed = 7\n')
    c = RunConfig.from_toml(p, seed=None, k_min=3)
    assert (c.k_max, c.k_min, c.seed, c.preprocessings) == (12, 3, 7, ("standard", "l2"))
    assert RunConfig.from_dict(c.to_dict()) == c
    p.write_text("kmax = 12\n")
    with pytest.raises(ParameterError, match=r"run.toml.*kmax"):
        RunConfig.from_toml(p)


def test_every_scaler_algorithms_validated():
    assert RunConfig().every_scaler_algorithms == ("kmeans",)
    cfg = RunConfig(every_scaler_algorithms=["kmeans", "minibatch_kmeans"])
    assert cfg.every_scaler_algorithms == ("kmeans", "minibatch_kmeans")
    with pytest.raises(ParameterError, match="every_scaler_algorithms"):
        RunConfig(every_scaler_algorithms=("spectral",))
