"""Identity spreading: one label for all images of one object, and the objects whose images disagree.

Where paths encode an object identity (the case layout ``<part>/<object id>/<image>``,
:func:`descluster.case.identities_from_paths`), an identity-invariant attribute
(a vehicle's type or colour) is the same on every image of the object. For a
task created with ``identity=True``:

- an image without an answer whose identity has answered images takes their
  majority label (source ``identity``, confidence = the majority's share);
- an identity without answers gets the mean of its images' propagated class
  distributions, so all its images carry the same propagated label;
- identities whose answered images carry different labels are *conflicts*:
  they are asked as a question of their own and listed in the export.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sps

__all__ = ["IdentityIndex"]


class IdentityIndex:
    """Integer codes of identities and the sparse membership matrix.

    Parameters
    ----------
    identities : ndarray of shape (n_samples,), object
        Identity of every row.

    Attributes
    ----------
    codes_ : ndarray of shape (n_samples,), int64
        Identity code of every row.
    names_ : ndarray of shape (n_identities,), object
    membership_ : scipy.sparse.csr_matrix of shape (n_identities, n_samples)
        1 where a row belongs to an identity.
    sizes_ : ndarray of shape (n_identities,), int64
    """

    def __init__(self, identities: np.ndarray):
        self.names_, self.codes_ = np.unique(np.asarray(identities, dtype=object).astype(str), return_inverse=True)
        n = self.codes_.size
        self.membership_ = sps.csr_matrix((np.ones(n, np.float32), (self.codes_, np.arange(n))),
                                          shape=(self.names_.size, n))
        self.sizes_ = np.bincount(self.codes_, minlength=self.names_.size)

    def answered_votes(self, label: np.ndarray, answered: np.ndarray, n_classes: int) -> np.ndarray:
        """Counts of answered labels per identity, shape (n_identities, n_classes), float64."""
        rows = np.flatnonzero(answered & (label >= 0))
        votes = np.zeros((self.names_.size, max(n_classes, 1)))
        np.add.at(votes, (self.codes_[rows], label[rows]), 1.0)
        return votes

    def spread(self, proba: np.ndarray, label: np.ndarray, answered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Identity-consistent class distributions and the rows labelled by identity.

        Parameters
        ----------
        proba : ndarray of shape (n_samples, n_classes)
            Propagated distribution.
        label : ndarray of shape (n_samples,), int
            Answered class (-1 none).
        answered : ndarray of shape (n_samples,), bool

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float32
            For unanswered rows: the identity's answered-label shares where it has
            answers, else the identity's mean propagated distribution.
        by_identity : ndarray of shape (n_samples,), bool
            Unanswered rows whose label comes from answered images of their identity.
        """
        n_classes = proba.shape[1]
        votes = self.answered_votes(label, answered, n_classes)
        has = votes.sum(axis=1) > 0
        shares = np.zeros_like(votes)
        shares[has] = votes[has] / votes[has].sum(axis=1, keepdims=True)
        mean = np.asarray(self.membership_ @ proba) / np.maximum(self.sizes_, 1)[:, None]
        per_identity = np.where(has[:, None], shares, mean).astype(np.float32)
        out = proba.astype(np.float32, copy=True)
        open_rows = ~answered
        out[open_rows] = per_identity[self.codes_[open_rows]]
        return out, open_rows & has[self.codes_]

    def conflicts(self, label: np.ndarray, answered: np.ndarray, n_classes: int, skip: set | None = None,
                  limit: int | None = 10) -> list:
        """Rows of each identity whose answered labels disagree (largest identity first).

        Parameters
        ----------
        skip : set of str, optional
            Identity names already asked.
        limit : int or None, default 10
            Most identities returned (None: all).

        Returns
        -------
        list of ndarray of int64
        """
        votes = self.answered_votes(label, answered, n_classes)
        bad = np.flatnonzero((votes > 0).sum(axis=1) >= 2)
        skip = skip or set()
        bad = [b for b in bad if str(self.names_[b]) not in skip]
        bad.sort(key=lambda b: -self.sizes_[b])
        if limit is not None:
            bad = bad[:limit]
        return [np.flatnonzero(self.codes_ == b) for b in bad]
