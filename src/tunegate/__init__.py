"""tunegate: should we fine-tune this LLM, and did it pay off?

The library package: model loading, prompting, scoring, tuning methods, statistics,
the promotion decision and the registry. It never imports Prefect; the Prefect
layer lives in the top-level ``tasks/`` and ``flows/`` packages.
"""

__version__ = "0.1.0"
