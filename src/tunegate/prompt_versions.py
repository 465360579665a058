"""Prompt versions: the searched prompt that won the ladder, registered for ``predict`` and ``serve`` to answer with.

When the best rung of a run is the optimized prompt (or its calibrated twin), the team that stops at "do not tune"
needs that prompt, not a rejected adapter. ``deploy`` registers it as a version of its own (method ``prompt``,
alias ``prompt``): no weights, only what its rung put into each prompt, in ``artifact/tunegate.json``:

- the chosen instruction (in the recorded ``prompt`` section, as a tuned version records its own);
- its demonstrations: a fixed list of (input, answer) pairs, or, for demonstrations retrieved per input, the train
  corpus (``artifact/demonstrations.parquet``) and ``k``, searched with bm25 as the rung did;
- the calibrated twin's per-label offset (``label_offset``), applied by the one answering path.

It is loaded with the base model its run used (``inference.load_version``) and, before the ``prompt`` alias moves,
re-scored from the registry on its eval rows like every version (``promotion.promote``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tunegate.answering import AnswerSpec
from tunegate.methods.base import ARTIFACT_META
from tunegate.records import Decision, EvalResult, RunContext

KIND = "prompt"  # meta["kind"] and meta["method"] of a prompt version
ALIAS = "prompt"  # the alias that follows the newest prompt version that re-scored
CORPUS = "demonstrations.parquet"  # retrieved demonstrations: the train rows they are retrieved from
SEARCHED_RUNG = "optimized_prompt"  # the rung kind whose winner is registered


def is_prompt(meta: dict[str, Any]) -> bool:
    return meta.get("kind") == KIND


def registrable(result: EvalResult | None) -> bool:
    """A searched prompt (the optimized prompt rung, or its calibrated twin) whose choice the result recorded."""
    return (
        result is not None
        and result.rung == SEARCHED_RUNG
        and "instruction" in result.details
        and "demos" in result.details
    )


@dataclass
class Demonstrations:
    """What a prompt version puts before each input: nothing, a fixed set, or the k most similar train rows."""

    fixed: list[tuple[str, str]] = field(default_factory=list)
    corpus: pl.DataFrame | None = None  # retrieved: columns id, text, answer (train with repeated texts kept once)
    k: int = 0
    conversational: bool = False
    _index: Any = None

    @classmethod
    def load(cls, artifact: Path, meta: dict[str, Any]) -> Demonstrations | None:
        demos = meta.get("demos")
        if not demos or demos.get("source") == "none":
            return None
        conversational = bool(meta.get("conversation", False))
        if demos["source"] == "retrieved":
            return cls(corpus=pl.read_parquet(artifact / CORPUS), k=int(demos["k"]), conversational=conversational)
        return cls(fixed=[(t, a) for t, a in demos["shots"]], conversational=conversational)

    def shots(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        """Per input, its demonstrations (retrieved: most similar last, nearest the input, as the rung put them)."""
        if self.corpus is None:
            return [list(self.fixed)] * len(texts)
        from tunegate import retrieval
        from tunegate.ladder.search import search_texts

        inputs, answers = self.corpus.get_column("text").to_list(), self.corpus.get_column("answer").to_list()
        if self._index is None:
            ids = self.corpus.get_column("id").to_list()
            self._index = retrieval.build_index(ids, search_texts(inputs, self.conversational), kind="bm25")
        hits, _ = self._index.search(search_texts(texts, self.conversational), self.k)
        return [[(inputs[h.index], answers[h.index]) for h in reversed(row)] for row in hits]


def write_artifact(dest: Path, *, run: RunContext, result: EvalResult, spec: AnswerSpec, train: pl.DataFrame) -> Path:
    """The prompt version's artifact folder for ``result`` (a :func:`registrable` rung result) under ``dest``."""
    from tunegate.data import ROW, canonical_columns

    text_col, label_col = canonical_columns(spec.task)
    details = result.details
    demos = details["demos"]
    dest.mkdir(parents=True, exist_ok=True)
    answer = spec.labels.get if spec.labels else (lambda y: y)
    if demos["source"] == "retrieved":  # the corpus the rung retrieved from, as it built it
        corpus = train.unique(subset=[text_col], keep="first", maintain_order=True)
        pl.DataFrame(
            {
                "id": [f"train:{r}" for r in corpus.get_column(ROW).to_list()],
                "text": corpus.get_column(text_col).to_list(),
                "answer": [answer(y) for y in corpus.get_column(label_col).to_list()],
            }
        ).write_parquet(dest / CORPUS)
        recorded = {"source": "retrieved", "k": demos["k"]}
    elif demos["source"] == "none":
        recorded = {"source": "none"}
    else:  # a fixed set: the rows' texts and answers, in the order the rung showed them
        by_row = {r: (t, y) for r, t, y in train.select(ROW, text_col, label_col).iter_rows()}
        shots = [[by_row[r][0], answer(by_row[r][1])] for r in demos["rows"] if r in by_row]
        recorded = {"source": demos["source"], "rows": demos["rows"], "shots": shots}
    offset = details.get("label_offset") or {}
    meta = {
        "kind": KIND,
        "method": KIND,
        "rung": result.name,
        "base_model": {"spec": run.model_spec, "id": run.model_id, "sha": run.model_sha},
        **spec.with_instruction(details["instruction"]).meta(),
        "demos": recorded,
        "label_offset": [offset[lab] for lab in spec.labels] if offset else [],
    }
    (dest / ARTIFACT_META).write_text(json.dumps(meta, indent=2))
    return dest


def version_meta(run: RunContext, decision: Decision, result: EvalResult) -> dict[str, Any]:
    """What the registry lists for a prompt version: its metric, and its difference from the run's tuned candidate
    (the gate's comparison, seen from the rung's side)."""
    return {
        "run_id": run.run_id,
        "method": KIND,
        "kind": KIND,
        "rung": result.name,
        "decision": "best-rung",
        "gate_metric": decision.gate_metric,
        "metric": result.metrics[decision.gate_metric],
        "delta": -decision.delta,
        "ci_low": -decision.ci_high,
        "ci_high": -decision.ci_low,
        "data_hash": decision.provenance["data_hash"],
        "config_hash": run.config_hash,
        "base_model": run.model_spec,
    }


def model_card(name: str, run: RunContext, decision: Decision, result: EvalResult, meta: dict[str, Any]) -> str:
    demos = meta["demos"]
    what = {
        "none": "no demonstrations",
        "retrieved": f"the {demos.get('k')} most similar train rows per input (bm25 over `artifact/{CORPUS}`)",
    }.get(demos["source"], f"{len(demos.get('shots', []))} fixed {demos['source']} demonstrations")
    value = result.metrics[decision.gate_metric]
    return "\n".join(
        [
            f"# {name}: prompt version ({result.name})",
            "",
            f"The best rung of run {run.run_id}: the base model {run.model_id} (sha256 {run.model_sha[:16]}...) with "
            "a prompt searched on the selection split. No weights were changed.",
            "",
            f"- instruction: {meta['prompt']['instruction']!r}",
            f"- demonstrations: {what}",
            f"- calibrated: {'yes, per-label offset ' + str(meta['label_offset']) if meta['label_offset'] else 'no'}",
            f"- {decision.gate_metric} on the eval rows: {value:.3f}; the tuned candidate of the same run "
            f"({decision.decision}): {decision.tuned[decision.gate_metric]:.3f} ({decision.delta:+.3f} for tuning, "
            f"95% CI [{decision.ci_low:+.3f}, {decision.ci_high:+.3f}])",
            "",
            f"Gate: {decision.summary}",
            "",
        ]
    )
