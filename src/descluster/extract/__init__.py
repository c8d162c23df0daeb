"""Descriptor extraction: images (folder or zip) -> a descluster case.

``import descluster.extract`` does not import torch; the CNN backbones import it
when constructed and raise an ImportError advising ``pip install .[extract]``
if it is missing. The ``colour`` backbone needs only numpy and Pillow.

Public API
----------
extract_case(images, out_dir, backbones=..., batch_size=64, progress=True, limit=None, ...)
    Compute descriptors and write the case layout (resumable).
Backbone, BACKBONES, make_backbone
    The backbone strategy, its registry and factory.
MobileNetV2Bottleneck, EfficientNetLite0, ColourHistogram
    The registered backbones.
"""

from .backbones import (
    BACKBONES,
    DEFAULT_BACKBONES,
    DEFAULT_INPUT_SIZE,
    EfficientNetLite0,
    MobileNetV2Bottleneck,
    make_backbone,
)
from .base import Backbone
from .case import extract_case, list_case_images
from .colour import ColourHistogram
from .imagenet import VEHICLE_CLASSES

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONES",
    "DEFAULT_INPUT_SIZE",
    "Backbone",
    "ColourHistogram",
    "EfficientNetLite0",
    "MobileNetV2Bottleneck",
    "VEHICLE_CLASSES",
    "extract_case",
    "list_case_images",
    "make_backbone",
]
