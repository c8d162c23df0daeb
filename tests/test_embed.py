"""2-D maps: shapes, the perplexity fallback, stratified sampling, registry and errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from descluster.embed import EMBEDDINGS, PCAEmbedding, TSNEEmbedding, embed_2d, stratified_sample
from descluster.errors import ParameterError


def _blobs(n_per: int, k: int = 3, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(k, dim))
    X = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


def test_tsne_perplexity_lowered_on_20_rows(caplog):
    X, _ = _blobs(7, k=3)
    X = X[:20]
    with caplog.at_level(logging.WARNING, logger="descluster.embed"):
        model = TSNEEmbedding(n_iter=100, early_exaggeration_iter=50, n_jobs=1)
        Y, how = model.fit_transform(X), model.description_
    assert model.perplexity_ == 6.0
    assert Y.shape == (20, 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    assert "perplexity lowered from 30 to 6" in how  # (20 - 2) / 3 = 6 < (20 - 1) / 3
    assert any("perplexity" in r.message for r in caplog.records)


def test_tsne_keeps_blobs_apart_and_is_reproducible():
    X, y = _blobs(20)
    Y1 = TSNEEmbedding(random_state=3, n_iter=150, early_exaggeration_iter=50, n_jobs=1).fit_transform(X)
    Y2 = TSNEEmbedding(random_state=3, n_iter=150, early_exaggeration_iter=50, n_jobs=1).fit_transform(X)
    np.testing.assert_array_equal(Y1, Y2)
    # every point's nearest map neighbour is in its own blob
    d = np.linalg.norm(Y1[:, None] - Y1[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (y[d.argmin(axis=1)] == y).mean() > 0.95


def test_tsne_samples_above_max_points_and_places_the_rest():
    X, y = _blobs(30)
    model = TSNEEmbedding(max_points=45, random_state=0, n_iter=150, early_exaggeration_iter=50, n_jobs=1)
    Y = model.fit_transform(X, y)
    assert Y.shape == (90, 2) and np.isfinite(Y).all()
    assert len(model.sample_) == 45
    assert np.bincount(y[model.sample_]).tolist() == [15, 15, 15]  # stratified by cluster
    assert "45-row sample stratified by cluster" in model.description_ and "45 rows placed" in model.description_
    # placed points land near their own blob's embedded points
    rest = np.setdiff1d(np.arange(90), model.sample_)
    centres = np.array([Y[model.sample_][y[model.sample_] == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(Y[rest][:, None] - centres[None], axis=2).argmin(axis=1)
    assert (nearest == y[rest]).mean() > 0.9


def test_tsne_runs_on_leading_principal_components_of_wide_input():
    X, y = _blobs(20, dim=12)
    model = TSNEEmbedding(pca_dims=4, random_state=0, n_iter=150, early_exaggeration_iter=50, n_jobs=1)
    Y = model.fit_transform(X)
    assert model.pca_dims_ == 4 and "leading 4 of 12 principal components" in model.description_
    d = np.linalg.norm(Y[:, None] - Y[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (y[d.argmin(axis=1)] == y).mean() > 0.95  # blobs still apart after the projection
    plain = TSNEEmbedding(pca_dims=None, random_state=0, n_iter=150, early_exaggeration_iter=50, n_jobs=1)
    plain.fit_transform(X)
    assert plain.pca_dims_ is None and "principal components" not in plain.description_
    with pytest.raises(ParameterError, match="pca_dims"):
        TSNEEmbedding(pca_dims=1).fit_transform(X)


def test_fft_gradients_on_request_and_3d_uses_barnes_hut():
    X, _ = _blobs(20)
    fft = TSNEEmbedding(gradient="fft", n_iter=30, early_exaggeration_iter=20, n_jobs=1)
    assert fft.fit_transform(X).shape == (60, 2) and "openTSNE (FFT" in fft.description_
    auto = TSNEEmbedding(n_components=3, n_iter=30, early_exaggeration_iter=20, n_jobs=1)
    assert auto.fit_transform(X).shape == (60, 3) and "Barnes-Hut, 3-D" in auto.description_


def test_three_dimensions_and_pca():
    X, _ = _blobs(10)
    Y, how = embed_2d(X, method="pca", n_components=3)
    assert Y.shape == (30, 3) and "PCA" in how
    model = PCAEmbedding(2)
    Y2 = model.fit_transform(X)
    np.testing.assert_allclose(np.abs(Y2), np.abs(Y[:, :2]), rtol=1e-4, atol=1e-4)
    assert 0 < model.explained_variance_ratio_.sum() <= 1


def test_tiny_inputs_fall_back_to_pca():
    Y, how = embed_2d(np.eye(3, dtype=np.float32), method="tsne")
    assert Y.shape == (3, 2) and "only 3 rows" in how


def test_stratified_sample_keeps_small_clusters():
    strata = np.array([0] * 97 + [1] * 3)
    idx = stratified_sample(100, 10, strata, random_state=1)
    assert len(idx) == 10 and len(np.unique(idx)) == 10 and np.all(np.diff(idx) > 0)
    assert 1 in strata[idx]
    np.testing.assert_array_equal(idx, stratified_sample(100, 10, strata, random_state=1))


def test_registry_and_errors():
    assert set(EMBEDDINGS) == {"tsne", "umap", "pca"}
    X, _ = _blobs(5)
    with pytest.raises(ParameterError, match="method='mds'"):
        embed_2d(X, method="mds")
    with pytest.raises(ParameterError, match="n_components=4"):
        embed_2d(X, method="pca", n_components=4)
    with pytest.raises(ParameterError, match="NaN"):
        embed_2d(np.full((5, 2), np.nan, dtype=np.float32), method="pca")
    with pytest.raises(ParameterError, match="n_iter=0"):
        TSNEEmbedding(n_iter=0).fit_transform(X)
    with pytest.raises(ParameterError, match="gradient='exact'"):
        TSNEEmbedding(gradient="exact").fit_transform(X)
    with pytest.raises(ParameterError, match="size=11"):
        stratified_sample(10, 11, None)


def test_umap_that_cannot_be_imported_falls_back_to_tsne_and_says_so(monkeypatch):
    import builtins

    from descluster.embed import UMAPEmbedding

    real = builtins.__import__

    def no_umap(name, *args, **kwargs):  # umap-learn broken at import (e.g. numba failing to initialise)
        if name == "umap":
            raise ImportError("numba failed")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    X = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    emb = UMAPEmbedding(random_state=0)
    Y = emb.fit_transform(X)
    assert Y.shape == (120, 2) and np.isfinite(Y).all()
    assert emb.description_.startswith("UMAP unavailable (ImportError); ")
