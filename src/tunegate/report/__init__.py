"""Human-readable outputs: the run report (md and a self-contained html), the comparison, the plan, the ladder,
the model card, and the plots; one module per page."""

from tunegate.report.charts import (
    save_break_even_plot,
    save_comparison_chart,
    save_loss_plot,
    save_quality_cost_plot,
    save_retention_plot,
)
from tunegate.report.comparison_page import render_comparison
from tunegate.report.html_page import render_html
from tunegate.report.model_card import render_model_card
from tunegate.report.plan_page import render_plan
from tunegate.report.run_page import render_run_report
from tunegate.report.rungs_table import LADDER_NOTES, ladder_table, render_ladder
from tunegate.report.words import prices_label

__all__ = [
    "LADDER_NOTES",
    "ladder_table",
    "prices_label",
    "render_comparison",
    "render_html",
    "render_ladder",
    "render_model_card",
    "render_plan",
    "render_run_report",
    "save_break_even_plot",
    "save_comparison_chart",
    "save_loss_plot",
    "save_quality_cost_plot",
    "save_retention_plot",
]
