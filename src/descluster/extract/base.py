"""The :class:`Backbone` strategy: turn a batch of RGB images into descriptor rows.

Every descriptor kind that ``descluster extract`` can compute is a subclass
registered in :data:`descluster.extract.backbones.BACKBONES`. This module never
imports torch: CNN backbones import it lazily through :func:`require_torch`, so
the colour histogram (and everything else in descluster) works without the
``[extract]`` extra.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


__all__ = ["Backbone", "require_torch"]


def require_torch():
    """Import and return :mod:`torch`, or fail with installation advice.

    Returns
    -------
    module
        The imported ``torch`` module.

    Raises
    ------
    ImportError
        If torch (or a backbone package) is not installed; the message tells
        the user to ``pip install .[extract]``.
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "CNN descriptor extraction needs PyTorch, which is not installed. "
            "Install the extra with `pip install .[extract]` (or use --backbones colour, "
            "which needs no torch)."
        ) from exc
    return torch


class Backbone(ABC):
    """Strategy computing one descriptor kind from RGB images.

    Subclasses set :attr:`name` (the descriptor file stem, e.g.
    ``"mobilenetv2"``) and :attr:`n_features`, validate their parameters in
    ``__init__`` and implement :meth:`embed`. Backbones with an ImageNet-1k
    classifier head also override :meth:`embed_and_classify` and set
    :attr:`has_imagenet_head`.

    Attributes
    ----------
    name : str
        Registry name and descriptor file stem.
    n_features : int
        Descriptor length ``d``.
    has_imagenet_head : bool
        Whether :meth:`imagenet_probs` / :meth:`embed_and_classify` are available.
    """

    name: str = ""
    n_features: int = 0
    has_imagenet_head: bool = False

    @abstractmethod
    def embed(self, images: Sequence) -> np.ndarray:
        """Compute descriptors for a batch of images.

        Parameters
        ----------
        images : sequence of PIL.Image.Image
            Mode ``RGB``, any sizes (``b`` images).

        Returns
        -------
        ndarray of shape (b, n_features), float32
            One finite row per image, in input order.
        """

    def embed_and_classify(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors and ImageNet-1k softmax probabilities in one forward pass.

        Parameters
        ----------
        images : sequence of PIL.Image.Image
            Mode ``RGB`` (``b`` images).

        Returns
        -------
        features : ndarray of shape (b, n_features), float32
        probs : ndarray of shape (b, 1000), float32
            Rows sum to 1 (standard ImageNet-1k class order).

        Raises
        ------
        NotImplementedError
            If the backbone has no classifier head (:attr:`has_imagenet_head` is False).
        """
        raise NotImplementedError(f"backbone {self.name!r} has no ImageNet classifier head")

    def imagenet_probs(self, images: Sequence) -> np.ndarray:
        """ImageNet-1k softmax probabilities, shape (b, 1000), float32 (see :meth:`embed_and_classify`)."""
        return self.embed_and_classify(images)[1]

    def get_params(self) -> dict:
        """Constructor parameters (scikit-learn style), used to fingerprint cached results."""
        return {}

    def fingerprint(self) -> dict:
        """Everything that determines the output: name, size and parameters (JSON-able)."""
        return {"name": self.name, "n_features": int(self.n_features), "params": self.get_params()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
