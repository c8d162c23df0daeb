"""descluster: cluster CNN image descriptors into labelled groups and find suspicious images.

The pipeline reads a *case* (descriptor files + image paths + images), scales and
reduces every descriptor kind, clusters it over a sweep of k, chooses k by a
documented rule, finds outliers, saves a fitted model that labels new images, and
writes a report. See README.md.

Python API (imported on first use, so ``import descluster`` stays light):

- :func:`load_case`, :class:`Case` (``Case.from_arrays``): the input;
- :class:`Study` (``Study(config=None, **fields).fit(case)``) -> :class:`StudyResult`;
- :class:`RunConfig`: every parameter, in sections;
- :class:`FittedModel`: the saved model (``StudyResult.model``, ``FittedModel.load(OUT)``).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_case", "Case", "Study", "StudyResult", "RunConfig", "FittedModel"]

_LAZY = {"load_case": "case", "Case": "case", "Study": "api", "StudyResult": "api", "RunConfig": "config",
         "FittedModel": "model"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"descluster.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'descluster' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
