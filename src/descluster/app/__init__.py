"""The local labelling web app (``descluster serve``): see :mod:`descluster.app.server` (starting it) and
:mod:`descluster.app.views` (its pages and API). ``LabellingApp`` is imported on first use, so importing
this package stays light (the standard library only)."""

from .server import create_app, serve

__all__ = ["LabellingApp", "create_app", "serve"]


def __getattr__(name: str):
    if name == "LabellingApp":
        from .views import LabellingApp

        return LabellingApp
    raise AttributeError(f"module 'descluster.app' has no attribute {name!r}")
