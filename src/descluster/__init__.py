"""descluster: cluster CNN image descriptors into labelled groups and find suspicious images.

The pipeline reads a *case* (descriptor files + image paths + images), scales and
reduces every descriptor kind, clusters it over a sweep of k, chooses k by a
documented rule, finds outliers and writes a report. See README.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
