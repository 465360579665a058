"""Settings of the `optimized_prompt` rung (``baselines.optimized_prompt``). Imports nothing heavy: the config
loads it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.strict import Strict

DemoSource = Literal["bootstrapped", "random", "retrieved"]
FEW_UNSEEN_ROWS = 100  # below this many selection rows left unseen by the search, which rung is best is noisy


class OptimizedPromptConfig(Strict):
    """The optimized-prompt rung: an instruction and demonstrations searched on the selection split (as DSPy's
    BootstrapFewShot / MIPRO do), then judged on the eval rows like every rung."""

    enabled: bool = Field(
        default=False,
        description="Search a prompt on the selection split (needs data.dev or data.dev_fraction; classification).",
    )
    k: int = Field(default=4, ge=1, le=32, description="Demonstrations per candidate set.")
    demos: list[DemoSource] = Field(
        default=["bootstrapped", "random", "retrieved"],
        description="Demonstration candidates for the best instruction: 'bootstrapped' (train rows the current "
        "best prompt answers right, as DSPy's BootstrapFewShot), 'random' (labels taking turns), 'retrieved' (per "
        "input, the k most similar train rows, bm25). [] searches instructions only.",
    )
    templates: bool = Field(default=True, description="Try the task type's built-in instruction templates.")
    rewrites: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Instructions the base model rewrites per round, shown labelled train rows and the current "
        "best instruction's errors.",
    )
    rounds: int = Field(default=2, ge=1, le=10, description="Rounds of demonstrations and rewrites.")
    max_candidates: int = Field(
        default=12, ge=1, le=200, description="Candidates scored at most (the configured prompt is the first)."
    )
    max_minutes: float = Field(
        default=10.0, gt=0, description="Wall-time cap of the search; the best candidate so far is kept."
    )
    selection_rows: int = Field(
        default=64, ge=8, description="Selection rows each candidate is scored on (a seeded sample, at most)."
    )
    seed: int = Field(default=0, description="Seed of the row samples and random demonstrations.")


def searched_rows(selection_rows: int, n_selection: int) -> int:
    """How many of ``n_selection`` selection rows the search scores candidates on: ``selection_rows`` at most, and
    at most half, so that the rows it never saw remain for comparing it with the other rungs."""
    return min(selection_rows, max(1, n_selection // 2))
