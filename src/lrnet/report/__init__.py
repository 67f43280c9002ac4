"""Reports of a run: tables (Markdown, HTML), history files read and checked, charts, and the
one-file HTML page. No torch or matplotlib at import time (``lrnet report --help`` stays fast)."""

from lrnet.report.charts import line_chart, stage_bar_chart, training_charts
from lrnet.report.history import check_evaluation, read_history, read_records
from lrnet.report.page import PANELS, check_out, draw_panels, write_report
from lrnet.report.tables import (
    METRICS,
    Table,
    class_table,
    format_tables,
    html_table,
    markdown_table,
    percent,
    stage_table,
)

__all__ = [
    "METRICS",
    "PANELS",
    "Table",
    "check_evaluation",
    "check_out",
    "class_table",
    "draw_panels",
    "format_tables",
    "html_table",
    "line_chart",
    "markdown_table",
    "percent",
    "read_history",
    "read_records",
    "stage_bar_chart",
    "stage_table",
    "training_charts",
    "write_report",
]
