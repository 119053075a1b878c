"""The report stage: data-quality counts per tenant run, joined later with the import outcomes.

JSON first (the stable contract, documented in docs/report-format.md); the HTML page and the
terminal summary are rendered from that same dict.
"""

from pipeline.report.build import SCHEMA_VERSION, add_load_outcomes, build_plan_report
from pipeline.report.render import render_html, render_terminal, write_reports
from pipeline.report.stats import QualityStats

__all__ = [
    "SCHEMA_VERSION",
    "QualityStats",
    "add_load_outcomes",
    "build_plan_report",
    "render_html",
    "render_terminal",
    "write_reports",
]
