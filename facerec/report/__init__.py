"""The run report: dataset, pose, aligned crops and heatmaps, training, evaluation, timings.

``build_report`` writes ``report.html`` (figures embedded as PNG data URIs) and ``report.md``.
"""

from facerec.report.builder import ReportPaths, build_report

__all__ = ["ReportPaths", "build_report"]
