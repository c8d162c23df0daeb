"""The HTML report a labelling team works from: ``build_report(result, out_dir, images)``.

See :mod:`descluster.report.build` (page), :mod:`.figures` (PNGs, plotly map)
and :mod:`.grids` (image montages).
"""

from .build import ReportOptions, build_report

__all__ = ["build_report", "ReportOptions"]
