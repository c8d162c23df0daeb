"""Exception types raised by descluster.

Every error names the file, row, column or parameter it is about, and the
numbers involved, so a user can fix the input without reading the code.
"""


class DesclusterError(Exception):
    """Base class of every error descluster raises on purpose."""


class CaseError(DesclusterError, ValueError):
    """The case layout or one of its files is invalid (names the file and counts)."""


class UnsafePickleError(DesclusterError, ValueError):
    """A pickle asks for a global outside the NumPy-array allow-list (names the global)."""


class UnsafePathError(DesclusterError, ValueError):
    """An image path would read outside the image root (absolute or containing '..')."""


class ImageReadError(DesclusterError, OSError):
    """An image could not be found, read or decoded (names the path and the cause)."""


class ParameterError(DesclusterError, ValueError):
    """A parameter is out of range (names the parameter, its value and the valid range)."""


class MemoryBudgetError(DesclusterError, MemoryError):
    """An operation would need more memory than allowed (gives the estimate and a way out)."""


class NoUsableClusteringError(DesclusterError, ValueError):
    """No configuration of the study produced a clustering with a finite label-free score
    (e.g. HDBSCAN called every image noise); ``study.csv`` and ``comparison.csv`` are written first."""
class LabellingError(DesclusterError, ValueError):
    """A labelling session request is invalid (names the task, class, question or file involved)."""
