import pytest

from descluster.cluster.algorithms import ALGORITHMS
from descluster.config import RunConfig
from descluster.errors import ParameterError
from descluster.preprocess.scalers import SCALERS


def test_defaults_sweep_2_to_30_and_names_come_from_the_registries():
    c = RunConfig()
    assert c.ks == list(range(2, 31)) == c.cluster.ks
    assert set(c.cluster.full_preprocessings) <= set(c.reduce.preprocessings)
    assert c.reduce.preprocessings == tuple(SCALERS) and c.cluster.algorithms == tuple(ALGORITHMS)
    # every adapter's parameters are held (and recorded) by the config, from the adapter classes
    assert c.cluster.params["kmeans"] == {k: v for k, v in ALGORITHMS["kmeans"]().get_params().items()
                                          if k not in ("n_clusters", "random_state")}
    assert c.cluster.adapter("kmeans", 7).get_params()["random_state"] == 7


@pytest.mark.parametrize("kw, word", [
    ({"k_min": 1}, "k_min"), ({"k_min": 5, "k_max": 4}, "k_max"), ({"variance_target": 1.5}, "variance_target"),
    ({"preprocessings": ("standard", "zscore")}, "zscore"), ({"algorithms": ("kmeans", "spectral")}, "spectral"),
    ({"embedding": "mds"}, "method"), ({"preprocessings": ("l2",), "full_preprocessings": ("standard",)}, "standard"),
    ({"tiny_share": 1.0}, "tiny_share"), ({"detectors": ("knn", "svm")}, "svm"), ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"),
    ({"cluster": {"params": {"kmeans": {"n_init": 0}}}}, "n_init"), ({"cluster": {"params": {"dbscan": {}}}}, "dbscan"),
    ({"report": {"thumb_size": 1}}, "thumb_size"), ({"stability_rows": 5}, "stability_rows"),
])
def test_bad_parameters_are_named(kw, word):
    with pytest.raises(ParameterError, match=word):
        RunConfig.from_dict(kw)


def test_flat_and_nested_keys_are_the_same_config():
    flat = RunConfig.from_dict({"k_max": 12, "embedding": "pca", "outliers": False}, k_min=None)
    nested = RunConfig.from_dict({"cluster": {"k_max": 12}, "embedding": {"method": "pca"},
                                  "outliers": {"enabled": False}})
    assert flat == nested and flat.cluster.k_max == 12 and not flat.outliers.enabled
    partial = RunConfig.from_dict({"cluster": {"params": {"kmeans": {"n_init": 5}}}})
    assert partial.cluster.params["kmeans"]["n_init"] == 5 and partial.cluster.params["kmeans"]["max_iter"] == 10
    assert partial.cluster.params["gmm"] == RunConfig().cluster.params["gmm"]


def test_toml_round_trip_and_unknown_key(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('k_max = 12\npreprocessings = ["standard", "l2"]\nseed = 7\n[selection]\nwindow = 2.0\n')
    c = RunConfig.from_toml(p, seed=None, k_min=3)
    assert (c.cluster.k_max, c.cluster.k_min, c.seed, c.reduce.preprocessings) == (12, 3, 7, ("standard", "l2"))
    assert c.selection.window == 2.0
    assert RunConfig.from_dict(c.to_dict()) == c
    p.write_text("kmax = 12\n")
    with pytest.raises(ParameterError, match=r"run.toml.*kmax"):
        RunConfig.from_toml(p)


def test_every_scaler_algorithms_validated():
    assert RunConfig().cluster.every_scaler_algorithms == ("kmeans",)
    cfg = RunConfig.from_dict({"every_scaler_algorithms": ["kmeans", "minibatch_kmeans"]})
    assert cfg.cluster.every_scaler_algorithms == ("kmeans", "minibatch_kmeans")
    with pytest.raises(ParameterError, match="every_scaler_algorithms"):
        RunConfig.from_dict({"every_scaler_algorithms": ("spectral",)})
