"""Few-shot: k fixed random train rows as demonstrations (labels take turns, so each is shown)."""

from __future__ import annotations

import random
from typing import Any

from tunegate.ladder.base import Augment, LadderContext, Rung, RungKind
from tunegate.ladder.few_shot.settings import FewShotConfig


def select_shots(train, *, k: int, seed: int, task: str):
    """k demonstrations from train (a polars frame); for classification, labels take turns so each is shown."""
    from tunegate.data import canonical_columns
    from tunegate.problems import task_type

    _, label_col = canonical_columns(task)
    rng = random.Random(seed)
    rows = list(range(train.height))
    rng.shuffle(rows)
    if task_type(task).has_labels:
        by_label: dict[str, list[int]] = {}
        for i in rows:
            by_label.setdefault(train[i, label_col], []).append(i)
        order = sorted(by_label)
        rng.shuffle(order)
        picked: list[int] = []
        while len(picked) < k and any(by_label.values()):
            for lab in order:
                if by_label[lab] and len(picked) < k:
                    picked.append(by_label[lab].pop())
        rows = picked
    return train[rows[:k]]


class FewShot(RungKind):
    def expand(self, settings: FewShotConfig, ctx: LadderContext) -> list[Rung]:
        return [Rung("few_shot", kind=self.key, params={"k": settings.k, "seed": settings.seed})]

    def augment(self, rung: Rung, ctx: LadderContext, train, texts: list[str]) -> Augment:
        from tunegate.data import canonical_columns

        shots_df = select_shots(train, k=rung.params["k"], seed=rung.params["seed"], task=ctx.task)
        shots = [(t, ctx.answer(y)) for t, y in shots_df.select(*canonical_columns(ctx.task)).iter_rows()]
        return Augment(shots=[shots] * len(texts), details={"shots": [list(s) for s in shots]})

    def describe(self, details: dict[str, Any]) -> str:
        return f"{len(details['shots'])} fixed random train rows + input"
