"""PCA of a matrix too big to copy (:class:`ChunkedPCA`): covariance or randomized solver.

``covariance`` accumulates the (shifted) Gram matrix chunk by chunk, then a dense
symmetric eigendecomposition (:func:`scipy.linalg.eigh`); ``randomized`` runs
:func:`sklearn.utils.extmath.randomized_svd` (Halko, Martinsson & Tropp 2011) on a
fixed-seed row sample, for very wide data.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.extmath import randomized_svd, svd_flip

from ..errors import ParameterError
from ..rows import row_chunks, sample_rows
from ..validation import check_choice, check_float, check_int as _check_int
from ._chunks import DEFAULT_CHUNK, SAMPLE_ROWS, check_fitted_width, check_matrix, map_chunks, read_rows
from .moments import GRAM_DTYPES, GramMoments

__all__ = ["PCA_SOLVERS", "COVARIANCE_MAX_FEATURES", "ChunkedPCA"]

#: Widest matrix for which ``solver="auto"`` uses the covariance route: its d × d
#: float64 accumulator is 8 d² bytes (134 MB at 4096) and ``eigh`` is O(d³).
COVARIANCE_MAX_FEATURES = 4096


def _fit_covariance_route(pca: "ChunkedPCA", mean: np.ndarray, cov: np.ndarray, n_samples: int) -> None:
    """Eigendecompose ``cov`` and set the PCA attributes (covariance solver)."""
    d = cov.shape[0]
    evals, evecs = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    evals = np.clip(evals[::-1], 0.0, None)  # descending; tiny negatives are round-off
    total = float(evals.sum())
    ratio = evals / total if total > 0 else np.zeros(d)
    p = pca._choose(ratio, n_samples, d)
    comps = evecs[:, ::-1][:, :p].T
    _, comps = svd_flip(None, comps, u_based_decision=False)
    pca._set(mean, comps, evals[:p], ratio, total, n_samples, d, "covariance")


def _fit_randomized_route(pca: "ChunkedPCA", X, n: int, d: int) -> None:
    """Randomized SVD of the centred row sample (randomized solver)."""
    idx = sample_rows(n, SAMPLE_ROWS, pca.random_state)
    S = read_rows(X, idx, pca.chunk_size)
    mean = S.mean(axis=0, dtype=np.float64)
    S -= mean.astype(np.float32)
    m = len(idx)
    total = sum(float(np.square(S[sl], dtype=np.float64).sum()) for sl in row_chunks(m, 4096)) / max(m - 1, 1)
    limit = min(n, d)
    k = pca._requested(limit)
    k = min(k, min(m, d))
    _, s, vt = randomized_svd(S, n_components=k, n_oversamples=10, n_iter=4, flip_sign=False,
                              random_state=pca.random_state)
    _, vt = svd_flip(None, vt, u_based_decision=False)
    evals = s.astype(np.float64) ** 2 / max(m - 1, 1)
    ratio = evals / total if total > 0 else np.zeros(k)
    p = pca._choose(ratio, n, d, warn=False)
    pca._set(mean, vt[:p], evals[:p], ratio, total, n, d, "randomized")
    pca.n_sampled_ = m


#: PCA solver name -> description; ``auto`` resolves by width (see ChunkedPCA).
PCA_SOLVERS = {
    "covariance": "streamed Gram matrix + scipy.linalg.eigh (exact, full spectrum)",
    "randomized": f"sklearn randomized_svd on a fixed-seed sample of <= {SAMPLE_ROWS:,} rows",
    "auto": f"covariance when n_features <= {COVARIANCE_MAX_FEATURES}, else randomized",
}


class ChunkedPCA(TransformerMixin, BaseEstimator):
    """PCA of a matrix too big to copy, fitted and applied chunk by chunk.

    Parameters
    ----------
    n_components : int or None, default None
        Components to keep. None: the smallest p whose cumulative explained
        variance reaches ``variance_target``, at most ``max_components``.
        Larger than ``min(n_samples, n_features)``: capped, with a warning.
    variance_target : float in (0, 1], default 0.90
    max_components : int, default 256
    solver : {"auto", "covariance", "randomized"}, default "auto"
        See :data:`PCA_SOLVERS`. ``auto`` takes ``covariance`` up to
        ``COVARIANCE_MAX_FEATURES`` columns (measured ~5× faster than
        scikit-learn's randomized PCA at 416,314 × 2560, see ``benchmarks/``).
    chunk_size : int, default 32768
        Rows read per step.
    random_state : int, default 0
        Seed of the randomized solver (sample and projections).
    gram_dtype : {"float32", "float64"}, default "float32"
        Precision of each chunk's Gram gemm (accumulated in float64 either way).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,), float64
    components_ : ndarray of shape (n_components_, n_features), float32
        Unit principal axes, by decreasing variance; each row's largest-magnitude
        entry is positive (scikit-learn's ``svd_flip`` convention), so fits are reproducible.
    explained_variance_ : ndarray of shape (n_components_,), float64
        Eigenvalues of the covariance (``ddof=1``) for the kept components.
    explained_variance_ratio_ : ndarray of shape (n_curve,), float64
        Eigenvalue / total variance. ``covariance``: the full curve, ``n_curve = n_features``;
        ``randomized``: the components computed (``n_curve`` ≥ ``n_components_``).
    total_variance_ : float
        Trace of the covariance.
    variance_reached_ : float
        Cumulative ratio of the kept components (below ``variance_target`` when capped).
    n_components_ : int
    n_samples_ : int
    n_features_in_ : int
    solver_ : str
        ``"covariance"`` or ``"randomized"``.

    Notes
    -----
    Components equal scikit-learn's ``PCA(svd_solver="full")`` up to sign and
    round-off (covariance route): both are the eigenvectors of the sample
    covariance (Jolliffe, *Principal Component Analysis*, 2002).
    """

    def __init__(self, n_components: int | None = None, variance_target: float = 0.90, max_components: int = 256,
                 solver: str = "auto", chunk_size: int = DEFAULT_CHUNK, random_state: int = 0,
                 gram_dtype: str = "float32"):
        self.n_components = n_components
        self.variance_target = variance_target
        self.max_components = max_components
        self.solver = solver
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.gram_dtype = gram_dtype

    # validation and choice ------------------------------------------------
    def _validate(self) -> None:
        _check_int("n_components", self.n_components, 1, allow_none=True)
        _check_int("max_components", self.max_components, 1)
        _check_int("chunk_size", self.chunk_size, 1)
        _check_int("random_state", self.random_state, 0)
        check_float("variance_target", self.variance_target, 0.0, 1.0)
        check_choice("solver", self.solver, PCA_SOLVERS)
        check_choice("gram_dtype", self.gram_dtype, GRAM_DTYPES)

    def _resolve_solver(self, d: int) -> str:
        if self.solver != "auto":
            return self.solver
        return "covariance" if d <= COVARIANCE_MAX_FEATURES else "randomized"

    def _requested(self, limit: int, warn: bool = True) -> int:
        """Components to compute: explicit ``n_components`` (capped with a warning) or ``max_components``."""
        if self.n_components is not None:
            if self.n_components > limit:
                if not warn:
                    return limit
                warnings.warn(
                    f"n_components={self.n_components} exceeds min(n_samples, n_features)={limit}; using {limit}",
                    UserWarning, stacklevel=4)
                return limit
            return int(self.n_components)
        return min(int(self.max_components), limit)

    def _choose(self, ratio: np.ndarray, n: int, d: int, warn: bool = True) -> int:
        """Kept components from the ratio curve (variance target, caps)."""
        cap = min(self._requested(min(n, d), warn=warn), len(ratio))
        if self.n_components is not None:
            return cap
        if not np.any(ratio > 0):  # no variance at all (every column constant): one zero component
            return 1
        cum = np.cumsum(ratio)
        reached = np.flatnonzero(cum >= float(self.variance_target) - 1e-9)
        p = int(reached[0]) + 1 if reached.size else cap
        return max(1, min(p, cap))

    def _set(self, mean, comps, evals, ratio, total, n, d, solver) -> None:
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.components_ = np.ascontiguousarray(comps, dtype=np.float32)
        self.explained_variance_ = np.asarray(evals, dtype=np.float64)
        self.explained_variance_ratio_ = np.asarray(ratio, dtype=np.float64)
        self.total_variance_ = float(total)
        self.n_components_ = int(comps.shape[0])
        self.variance_reached_ = float(ratio[: self.n_components_].sum())
        self.n_samples_ = int(n)
        self.n_features_in_ = int(d)
        self.solver_ = solver

    # fitting ---------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit on ``X``, read ``chunk_size`` rows at a time.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Float; a float32 memory map is never copied whole.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid parameter (names it, its value and the valid range), or a
            non-finite value in ``X`` (names row and column).

        Warns
        -----
        UserWarning
            ``n_components`` above ``min(n_samples, n_features)`` (both numbers given).
        """
        self._validate()
        n, d = check_matrix(X)
        if self._resolve_solver(d) == "randomized":
            _fit_randomized_route(self, X, n, d)
            return self
        m = GramMoments.from_matrix(X, self.chunk_size, self.gram_dtype)
        return self.fit_moments(m)

    def fit_moments(self, moments: GramMoments, offset: np.ndarray | None = None,
                    factor: np.ndarray | None = None) -> "ChunkedPCA":
        """Fit from streamed moments, optionally of the affine map ``(x - offset) * factor``.

        Parameters
        ----------
        moments : GramMoments
            Of the raw matrix.
        offset, factor : ndarray of shape (n_features,), optional
            A per-column affine scaler; the scaled data's mean is
            ``(mean - offset) * factor`` and covariance ``diag(factor) C diag(factor)``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid parameters, or empty moments.
        """
        self._validate()
        if moments.n_samples_ < 1:
            raise ParameterError("moments hold no rows: fit on at least 1 row")
        mean, cov = moments.mean(), moments.covariance()
        if factor is not None:
            off = np.zeros_like(mean) if offset is None else np.asarray(offset, dtype=np.float64)
            f = np.asarray(factor, dtype=np.float64)
            mean = (mean - off) * f
            cov = cov * f[:, None] * f[None, :]
        _fit_covariance_route(self, mean, cov, moments.n_samples_)
        return self

    def transform_chunk(self, C: np.ndarray) -> np.ndarray:
        """Project one float32 chunk of shape (m, n_features) to (m, n_components_), float32; may overwrite ``C``."""
        C = np.subtract(C, self.mean_.astype(np.float32), dtype=np.float32)
        return C @ self.components_.T

    def transform(self, X) -> np.ndarray:
        """Project ``X`` onto the components, chunk by chunk.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples, n_components_), float32

        Raises
        ------
        ParameterError
            Not fitted or wrong number of columns.
        """
        check_fitted_width(X, "ChunkedPCA", hasattr(self, "components_"), getattr(self, "n_features_in_", None))
        return map_chunks(X, self.n_components_, self.transform_chunk, self.chunk_size)

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``: shape (n_samples, n_components_), float32."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Map reduced rows back: ``Z @ components_ + mean_``, shape (n, n_features_in_), float32."""
        return (np.asarray(Z, dtype=np.float32) @ self.components_ + self.mean_.astype(np.float32)).astype(np.float32)
