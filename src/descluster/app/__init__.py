"""The local labelling web app (``descluster serve``): see :mod:`descluster.app.server`."""

from .server import LabellingApp, create_app, serve

__all__ = ["LabellingApp", "create_app", "serve"]
