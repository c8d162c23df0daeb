"""Tests of descluster.preprocess: scalers, ChunkedPCA, reduce_descriptor, mix_spaces."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler, normalize

from descluster.errors import ParameterError
from descluster.preprocess import (
    SCALERS,
    ChunkedPCA,
    GramMoments,
    make_scaler,
    mix_spaces,
    reduce_descriptor,
)
from descluster.results import ReducedSpace, SpaceId


def _data(n=600, d=24, seed=0, offset=5.0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) * np.linspace(3, 0.1, d)[:, None]
    return (rng.normal(size=(n, d)) @ A + offset).astype(np.float32)


def _with_constant(X, cols=(2, 7), value=3.25):
    X = X.copy()
    X[:, list(cols)] = value
    return X


# ----------------------------------------------------------------- scalers

SK_EQUIVALENT = {
    "none": lambda X: X,
    "standard": lambda X: StandardScaler().fit_transform(X),
    "minmax": lambda X: MinMaxScaler().fit_transform(X),
    "robust": lambda X: RobustScaler().fit_transform(X),
    "l2": lambda X: normalize(X),
}


@pytest.mark.parametrize("name", list(SCALERS))
def test_scaler_matches_sklearn_chunked(name):
    X = _data()
    ours = make_scaler(name, chunk_size=97).fit(X).transform(X)
    assert ours.dtype == np.float32 and ours.shape == X.shape
    np.testing.assert_allclose(ours, SK_EQUIVALENT[name](X.astype(np.float64)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(SCALERS))
def test_constant_columns_are_exactly_zero(name):
    X = _with_constant(_data(n=300, d=10))
    Y = make_scaler(name, chunk_size=64).fit(X).transform(X)
    assert np.all(Y[:, [2, 7]] == 0.0)
    assert np.isfinite(Y).all()
    # the other columns are not all zero
    assert np.abs(Y[:, [0, 1, 3]]).sum() > 0


def test_unknown_scaler_lists_valid_names():
    with pytest.raises(ParameterError, match="zscore.*none, standard, minmax, robust, l2"):
        make_scaler("zscore")


def test_scaler_reports_nonfinite_row_and_column():
    X = _data(n=50, d=6)
    X[31, 4] = np.nan
    with pytest.raises(ParameterError, match="row 31, column 4"):
        make_scaler("standard", chunk_size=8).fit(X)


def test_robust_scaler_sample_is_seeded_and_bounded():
    X = _data(n=400, d=5)
    a = make_scaler("robust", random_state=3)
    a.sample_size = 100
    b = make_scaler("robust", random_state=3)
    b.sample_size = 100
    a.fit(X)
    b.fit(X)
    assert a.n_sampled_ == 100
    np.testing.assert_array_equal(a.center_, b.center_)


def test_scaler_memmap_input(tmp_path):
    X = _data(n=500, d=8)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(make_scaler("standard", chunk_size=64).fit(mm).transform(mm),
                                  make_scaler("standard", chunk_size=1000).fit(X).transform(X))


# ----------------------------------------------------------------- PCA


def _align_signs(A, B):
    """Flip rows of A to match B's sign (components are defined up to sign)."""
    s = np.sign(np.sum(A * B, axis=1))
    return A * s[:, None]


@pytest.mark.parametrize("gram_dtype", ["float32", "float64"])
def test_pca_matches_sklearn_full(gram_dtype):
    X = _data(n=800, d=30)
    ours = ChunkedPCA(n_components=10, chunk_size=128, gram_dtype=gram_dtype).fit(X)
    ref = PCA(n_components=10, svd_solver="full").fit(X.astype(np.float64))
    full = PCA(svd_solver="full").fit(X.astype(np.float64))
    assert ours.solver_ == "covariance"
    assert ours.explained_variance_ratio_.shape == (30,)
    np.testing.assert_allclose(ours.explained_variance_ratio_, full.explained_variance_ratio_, atol=1e-5)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(_align_signs(ours.components_, ref.components_), ref.components_, atol=1e-4)
    rec_ours = ours.inverse_transform(ours.transform(X))
    rec_ref = ref.inverse_transform(ref.transform(X))
    np.testing.assert_allclose(rec_ours, rec_ref, atol=1e-3 * np.abs(X).max())


def test_pca_chunked_equals_unchunked_and_is_deterministic():
    X = _data(n=1000, d=20)
    a = ChunkedPCA(n_components=6, chunk_size=37).fit(X)
    b = ChunkedPCA(n_components=6, chunk_size=5000).fit(X)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-5)
    np.testing.assert_allclose(a.transform(X), b.transform(X), atol=1e-4)
    # sign convention: largest |entry| of each component is positive
    rows = np.arange(6)
    assert np.all(a.components_[rows, np.abs(a.components_).argmax(axis=1)] > 0)
    assert a.transform(X).dtype == np.float32
    np.testing.assert_array_equal(a.fit_transform(X), a.transform(X))


def test_variance_target_picks_n_on_known_spectrum():
    # independent columns with variances 40, 30, 20, 10 (total 100) -> ratios .4 .3 .2 .1
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(20000, 4))
    Z = (Z - Z.mean(0)) / Z.std(0, ddof=1)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Z = Z @ np.linalg.inv(np.linalg.cholesky(np.cov(Z.T))).T  # whiten exactly: cov(Z) = I
    X = (Z * np.sqrt([40.0, 30.0, 20.0, 10.0])) @ Q.T
    for target, expected in [(0.35, 1), (0.65, 2), (0.7, 2), (0.85, 3), (0.95, 4)]:
        pca = ChunkedPCA(variance_target=target).fit(X)
        assert pca.n_components_ == expected, target
    np.testing.assert_allclose(pca.explained_variance_ratio_, [0.4, 0.3, 0.2, 0.1], atol=1e-4)
    capped = ChunkedPCA(variance_target=0.95, max_components=2).fit(X)
    assert capped.n_components_ == 2
    assert capped.variance_reached_ == pytest.approx(0.7, abs=1e-4)


def test_components_cap_warns_with_both_numbers():
    X = _data(n=12, d=30)
    with pytest.warns(UserWarning, match=r"n_components=50.*min\(n_samples, n_features\)=12"):
        pca = ChunkedPCA(n_components=50).fit(X)
    assert pca.n_components_ == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_components above the rank: silent cap
        assert ChunkedPCA(max_components=500, variance_target=1.0).fit(X).n_components_ <= 12


def test_pca_constant_columns_finite():
    X = _with_constant(_data(n=200, d=12))
    pca = ChunkedPCA(variance_target=0.99).fit(X)
    Z = pca.transform(X)
    assert np.isfinite(Z).all() and np.isfinite(pca.explained_variance_ratio_).all()
    assert np.abs(pca.components_[:, [2, 7]]).max() < 1e-6  # no variance there
    all_const = np.full((50, 4), 2.0, dtype=np.float32)
    p = ChunkedPCA().fit(all_const)
    assert p.n_components_ == 1 and np.all(p.explained_variance_ratio_ == 0)
    assert np.all(p.transform(all_const) == 0)


@pytest.mark.parametrize("kw, name", [
    ({"variance_target": 0.0}, "variance_target"), ({"variance_target": 1.5}, "variance_target"),
    ({"max_components": 0}, "max_components"), ({"n_components": -1}, "n_components"),
    ({"solver": "arpack"}, "solver"), ({"chunk_size": 0}, "chunk_size"), ({"gram_dtype": "float16"}, "gram_dtype"),
])
def test_pca_parameter_errors_name_the_parameter(kw, name):
    with pytest.raises(ParameterError, match=name):
        ChunkedPCA(**kw).fit(_data(n=20, d=4))


def test_randomized_solver_close_to_exact():
    X = _data(n=1500, d=40)
    exact = ChunkedPCA(n_components=8, solver="covariance").fit(X)
    rnd = ChunkedPCA(n_components=8, solver="randomized").fit(X)
    assert rnd.solver_ == "randomized"
    np.testing.assert_allclose(rnd.explained_variance_ratio_[:8], exact.explained_variance_ratio_[:8], rtol=1e-3)
    np.testing.assert_allclose(np.abs(np.sum(rnd.components_ * exact.components_, axis=1)), 1.0, atol=1e-3)


# ----------------------------------------------------------------- reduce / mix


@pytest.mark.parametrize("prep", list(SCALERS))
def test_reduce_descriptor_equals_scale_then_pca(prep):
    X = _with_constant(_data(n=700, d=16))
    space = reduce_descriptor(X, prep, variance_target=0.9, chunk_size=100, descriptor="d")
    assert isinstance(space, ReducedSpace) and space.key == f"d/{prep}"
    scaled = make_scaler(prep).fit(X).transform(X)
    ref = ChunkedPCA(variance_target=0.9).fit(scaled)
    assert space.n_components == ref.n_components_ == space.X.shape[1]
    assert space.X.dtype == np.float32
    np.testing.assert_allclose(space.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-5)
    np.testing.assert_allclose(np.abs(space.X), np.abs(ref.transform(scaled)), atol=2e-3 * np.abs(space.X).max())


def test_reduce_reuses_moments():
    X = _data(n=300, d=10)
    m = GramMoments.from_matrix(X, chunk_size=64)
    a = reduce_descriptor(X, "standard", moments=m)
    b = reduce_descriptor(X, "standard")
    np.testing.assert_allclose(a.X, b.X, atol=1e-4)


def test_mix_spaces_unit_variance_blocks_and_name():
    rng = np.random.default_rng(0)
    a = ReducedSpace(SpaceId.single("a", "standard"), (rng.normal(size=(500, 3)) * 100).astype(np.float32), np.ones(3) / 3, 3, 0.9)
    b = ReducedSpace(SpaceId.single("b", "standard"), rng.normal(size=(500, 7)).astype(np.float32) * 0.01, np.ones(7) / 7, 7, 0.9)
    m = mix_spaces([a, b], weights=[1.0, 2.0])
    assert m.descriptor == "mix:a+b" and m.preprocessing == "standard" and m.key == "mix:a+b/standard"
    assert m.X.shape == (500, 10) and m.X.dtype == np.float32 and m.n_components == 10
    assert m.X[:, :3].var(axis=0, ddof=1).sum() == pytest.approx(1.0, rel=1e-4)
    assert m.X[:, 3:].var(axis=0, ddof=1).sum() == pytest.approx(4.0, rel=1e-4)
    assert m.explained_variance_ratio.sum() == pytest.approx(1.0)
    mixed = mix_spaces([a, ReducedSpace(SpaceId.single("c", "l2"), b.X, b.explained_variance_ratio, 7, 0.9)])
    assert mixed.preprocessing == "standard+l2"


def test_mix_spaces_errors():
    a = ReducedSpace(SpaceId.single("a", "none"), np.zeros((5, 2), np.float32), np.ones(2), 2, 0.9)
    b = ReducedSpace(SpaceId.single("b", "none"), np.zeros((6, 2), np.float32), np.ones(2), 2, 0.9)
    with pytest.raises(ParameterError, match="6 rows.*5"):
        mix_spaces([a, b])
    with pytest.raises(ParameterError, match="weights"):
        mix_spaces([a, a], weights=[1.0, -1.0])
    with pytest.raises(ParameterError, match="empty"):
        mix_spaces([])


def test_blas_info_reports_numpy_blas():
    from descluster.preprocess import blas_info

    info = blas_info()
    assert any(lib["user_api"] == "blas" and lib["num_threads"] >= 1 for lib in info)


def test_mixture_key_names_each_block_scaler_so_it_can_be_read_back():
    """A mixture's key keeps one preprocessing per block unless all share one (the labelling engine and
    the console parse it); 'none+l2' for three blocks was ambiguous."""
    parts = [SpaceId.single("colour", "none"), SpaceId.single("eff", "l2"), SpaceId.single("mob", "none")]
    assert SpaceId.mixture(parts).key == "mix:colour+eff+mob/none+l2+none"
    same = [SpaceId.single("a", "l2"), SpaceId.single("b", "l2")]
    assert SpaceId.mixture(same).key == "mix:a+b/l2"
    names, preps = SpaceId.mixture(parts).key[4:].split("/")
    assert len(names.split("+")) == len(preps.split("+"))


def test_mixture_table_name_reads_back_to_its_kinds():
    from descluster.results import SpaceId

    parts = [SpaceId.single("osnet", "l2"), SpaceId.single("vdc_color", "none"), SpaceId.single("vdc_type", "l2")]
    mix = SpaceId.mixture(parts)
    assert SpaceId.mixture_kinds(mix.descriptor) == ("osnet", "vdc_color", "vdc_type")
    assert mix.preprocessing.split("+") == ["l2", "none", "l2"]
    assert SpaceId.mixture_kinds("osnet") is None and SpaceId.mixture_kinds(parts[0].descriptor) is None
