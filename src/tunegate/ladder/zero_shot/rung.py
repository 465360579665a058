"""Zero-shot: the instruction and the input, nothing else."""

from __future__ import annotations

from typing import Any

from tunegate.ladder.base import LadderContext, Rung, RungKind


class ZeroShot(RungKind):
    def expand(self, settings: Any, ctx: LadderContext) -> list[Rung]:
        return [Rung("zero_shot", kind=self.key)]

    def describe(self, details: dict[str, Any]) -> str:
        return "instruction + input"
