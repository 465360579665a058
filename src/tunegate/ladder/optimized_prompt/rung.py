"""Optimized prompt: the instruction and demonstrations that score best on the selection split.

The search (what DSPy's BootstrapFewShot and MIPRO do, on the base model alone): the configured instruction is
the first candidate, then the task type's instruction templates; each round tries demonstration sets for the best
instruction so far (bootstrapped: train rows the best prompt answers right; random; retrieved per input) and
instructions the base model rewrites after seeing labelled train rows and the best prompt's errors on them. Every
candidate is scored on the same seeded sample of selection rows by the one answering path (the instruction and
fixed demonstrations are a prefix the scorer computes once): at most half the selection split, so that the rows
the search never saw remain for comparing it with the other rungs (its selection score is taken there only, and
``selection.common_rows`` compares every rung on them). A candidate replaces the best only by scoring
higher; ties keep the earlier one, so a search that finds nothing better keeps the configured prompt (no gain is
claimed). Caps: ``max_candidates``, ``rounds``, ``max_minutes``. The chosen prompt is then judged on the eval rows
like every rung; the search's time and tokens are its one-off setup cost.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from tunegate.ladder.base import Augment, LadderContext, Rung, RungKind, SearchEnv
from tunegate.ladder.optimized_prompt.settings import OptimizedPromptConfig, searched_rows

NO_DEMOS: dict[str, Any] = {"source": "none", "rows": []}
REWRITE_EXAMPLES = 6  # labelled train rows shown to the model when it rewrites the instruction
REWRITE_ERRORS = 3  # ... and the best prompt's mistakes among them
REWRITE_TOKENS = 64  # the longest instruction it may write
MAX_INSTRUCTION_CHARS = 400


@dataclass
class Candidate:
    instruction: str
    demos: dict[str, Any]  # {"source": none|bootstrapped|random|retrieved, "rows": train row numbers (fixed sets)}
    origin: str  # configured | template | rewrite | the demonstrations' source
    round: int
    metric: float = 0.0
    tokens_per_request: float = 0.0

    def key(self) -> tuple:
        return (self.instruction, self.demos["source"], tuple(self.demos["rows"]))

    def record(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "demos": self.demos,
            "origin": self.origin,
            "round": self.round,
            "selection_metric": round(self.metric, 6),
            "tokens_per_request": round(self.tokens_per_request, 1),
        }


@dataclass
class Search:
    """One search's state: the candidates tried (in order), the rows they are scored on, the caps."""

    rung: Rung
    ctx: LadderContext
    env: SearchEnv
    rows: Any  # the selection sample
    deadline: float
    tried: list[Candidate] = field(default_factory=list)
    tokens: int = 0
    stopped: str | None = None
    bar: Any = None

    @property
    def p(self) -> dict[str, Any]:
        return self.rung.params

    @property
    def best(self) -> Candidate:
        return max(self.tried, key=lambda c: c.metric)  # the first of equals: earlier candidates win ties

    def room(self) -> bool:
        if len(self.tried) >= self.p["max_candidates"]:
            self.stopped = self.stopped or f"max_candidates ({self.p['max_candidates']})"
        elif time.perf_counter() > self.deadline:
            self.stopped = self.stopped or f"max_minutes ({self.p['max_minutes']:g})"
        return self.stopped is None

    def trial(self, instruction: str, demos: dict[str, Any], origin: str, rnd: int) -> None:
        """Score one candidate on the selection sample (skipped when tried before or over a cap)."""
        c = Candidate(instruction, demos, origin, rnd)
        if any(t.key() == c.key() for t in self.tried) or (self.tried and not self.room()):
            return  # the configured prompt, first, is always scored: the search's reference
        texts = self.rows.get_column(text_column(self.ctx)).to_list()
        scored = self.env.score(instruction, shots_for(demos, self.ctx, self.env.train, texts), self.rows)
        c.metric, c.tokens_per_request = scored.metric, scored.prompt_tokens / max(len(texts), 1)
        self.tokens += scored.prompt_tokens
        self.tried.append(c)
        if self.bar is not None:
            self.bar.set_postfix_str(f"best {self.best.metric:.3f}", refresh=False)
            self.bar.update()


class OptimizedPrompt(RungKind):
    searches = True

    def expand(self, settings: OptimizedPromptConfig, ctx: LadderContext) -> list[Rung]:
        params = settings.model_dump(mode="json", exclude={"enabled"})
        return [Rung("optimized_prompt", kind=self.key, params=params)]

    def preflight(self, settings: OptimizedPromptConfig, ctx: LadderContext) -> tuple[dict[str, Any], str | None]:
        if not ctx.has_labels:
            return {}, (
                f"baselines.optimized_prompt searches prompts for classification tasks (each candidate is scored by "
                f"the labels' likelihood); this is a {ctx.task} task: set baselines.optimized_prompt: false"
            )
        if not ctx.selection:
            return {}, (
                "baselines.optimized_prompt searches its prompt on the selection split, and this config has none: "
                "set data.dev (a file) or data.dev_fraction (e.g. 0.2), or baselines.optimized_prompt: false. The "
                "eval rows cannot be searched on: they judge the result"
            )
        return {}, None

    def search(self, rung: Rung, ctx: LadderContext, env: SearchEnv) -> tuple[Rung, dict[str, Any]]:
        from tunegate.data import ROW
        from tunegate.problems import task_type
        from tunegate.progress import bar as progress_bar

        p = rung.params
        t0 = time.perf_counter()
        # at most half the selection rows: the others, never searched on, are where every rung is compared
        n = searched_rows(p["selection_rows"], env.selection.height)
        s = Search(rung, ctx, env, env.selection.sample(n=n, seed=p["seed"]), t0 + 60 * p["max_minutes"])
        with progress_bar(p["max_candidates"], "optimized_prompt: search", "candidate") as bar:
            s.bar = bar
            s.trial(env.instruction, NO_DEMOS, "configured", 0)
            for template in task_type(ctx.task).instruction_templates if p["templates"] else ():
                s.trial(template, NO_DEMOS, "template", 0)
            for rnd in range(1, p["rounds"] + 1):
                if not s.room():
                    break
                _round(s, rnd)
        best = s.best
        record = {
            "chosen": {"instruction": best.instruction, "demos": best.demos},
            "configured_instruction": env.instruction,
            "kept_configured": best is s.tried[0],
            "gain_on_selection": round(best.metric - s.tried[0].metric, 6),
            "metric": ctx.metric,
            "selection_rows": n,
            "searched_rows": s.rows.get_column(ROW).to_list(),  # left out of its selection score
            "candidates": [c.record() for c in s.tried],
            "stopped_by": s.stopped,
            "seconds": round(time.perf_counter() - t0, 3),
            "tokens": s.tokens,
        }
        return replace(rung, params={**p, "chosen": record["chosen"]}), record

    def augment(self, rung: Rung, ctx: LadderContext, train, texts: list[str]) -> Augment:
        chosen = rung.params.get("chosen")
        if chosen is None:
            raise ValueError("the optimized_prompt rung is scored after its search (RungKind.search)")
        details = {"instruction": chosen["instruction"], "demos": chosen["demos"]}
        if chosen["demos"]["source"] == "retrieved":  # the retrieval's ids, time and index, as its own rung records
            aug = _retrieved(chosen["demos"]["k"], ctx, train, texts)
            return replace(aug, instruction=chosen["instruction"], details={**aug.details, **details})
        shots = shots_for(chosen["demos"], ctx, train, texts)
        return Augment(shots=shots, instruction=chosen["instruction"], details=details)

    def describe(self, details: dict[str, Any]) -> str:
        search = details.get("search", {})
        demos = details.get("demos", NO_DEMOS)
        what = {
            "none": "",
            "bootstrapped": f" + {len(demos['rows'])} bootstrapped train rows",
            "random": f" + {len(demos['rows'])} random train rows",
            "retrieved": f" + the {demos.get('k', '')} most similar train rows (bm25)",
        }[demos["source"]]
        kept = "; kept the configured instruction" if search.get("kept_configured") else ""
        return (
            f"instruction searched on {search.get('selection_rows', '?')} selection rows "
            f"({len(search.get('candidates', []))} candidates{kept}){what} + input"
        )


def _round(s: Search, rnd: int) -> None:
    """One round: demonstration sets for the best instruction, then the model's rewrites of it."""
    p, env, ctx = s.p, s.env, s.ctx
    best = s.best
    sample = _train_sample(env.train, ctx, k=max(REWRITE_EXAMPLES, 4 * p["k"]), seed=p["seed"] + rnd)
    sample_texts = sample.get_column(text_column(ctx)).to_list()
    scored = env.score(best.instruction, shots_for(best.demos, ctx, env.train, sample_texts), sample)
    s.tokens += scored.prompt_tokens
    for source in p["demos"]:
        demos = _demos(source, p["k"], scored, sample, ctx, env.train, seed=p["seed"] + rnd)
        if demos is not None:
            s.trial(best.instruction, demos, source, rnd)
    best = s.best
    for i in range(p["rewrites"]):
        if not s.room():
            return
        text = _rewrite(env, ctx, best.instruction, sample, scored, attempt=i)
        if text:
            s.trial(text, best.demos, "rewrite", rnd)


def _demos(source: str, k: int, scored, sample, ctx: LadderContext, train, *, seed: int) -> dict[str, Any] | None:
    """A demonstration set of ``source``: bootstrapped (sample rows the best prompt answered right, labels taking
    turns), random (labels taking turns), or retrieved per input (no fixed rows)."""
    from tunegate.data import ROW
    from tunegate.ladder.few_shot.rung import select_shots

    if source == "retrieved":
        return {"source": "retrieved", "rows": [], "k": k}
    if source == "random":
        return {
            "source": "random",
            "rows": select_shots(train, k=k, seed=seed, task=ctx.task).get_column(ROW).to_list(),
        }
    right = sample.filter(_mask(scored.correct))
    if right.height == 0:
        return None
    return {
        "source": "bootstrapped",
        "rows": select_shots(right, k=k, seed=seed, task=ctx.task).get_column(ROW).to_list(),
    }


def _mask(values: list[bool]):
    import polars as pl

    return pl.Series(values, dtype=pl.Boolean)


def _train_sample(train, ctx: LadderContext, *, k: int, seed: int):
    from tunegate.ladder.few_shot.rung import select_shots

    return select_shots(train, k=min(k, train.height), seed=seed, task=ctx.task)


def _rewrite(env: SearchEnv, ctx: LadderContext, instruction: str, sample, scored, *, attempt: int) -> str | None:
    """An instruction the base model writes for the task, shown the labels, labelled train rows and the current
    instruction's mistakes on them; None when it writes nothing usable."""
    text_col, label_col = text_column(ctx), label_column(ctx)
    texts, labels = sample.get_column(text_col).to_list(), sample.get_column(label_col).to_list()
    shown = [f"Input: {_short(t)}\nCategory: {ctx.answer(y)}" for t, y in zip(texts, labels)][
        attempt : attempt + REWRITE_EXAMPLES
    ]
    errors = [
        f"Input: {_short(t)}\nCorrect: {ctx.answer(y)}; answered: {ctx.answer(pred)}"
        for t, y, pred, ok in zip(texts, labels, scored.predictions, scored.correct)
        if not ok
    ][:REWRITE_ERRORS]
    labels_list = ", ".join(ctx.label_answers.values())
    request = "\n\n".join(
        [
            f"Write an instruction for a text classifier. The categories are: {labels_list}.",
            f'The current instruction is: "{instruction.replace("{labels}", labels_list)}"',
            "Examples with their correct category:\n" + "\n".join(shown),
            *(["The current instruction got these wrong:\n" + "\n".join(errors)] if errors else []),
            "Write one better instruction in one or two sentences. Reply with the instruction only.",
        ]
    )
    return _instruction_in(env.generate(request, REWRITE_TOKENS), request)


LEAD = re.compile(r'^"?((the|a|my) )?((correct|better|improved|new|rewritten) )?instruction( is)?:\s*', re.IGNORECASE)
ECHOES = ("input:", "correct:", "category:", "the current instruction", "examples with", "write ", "instruction:")


def _instruction_in(reply: str, request: str = "") -> str | None:
    """The first line of a reply that reads as an instruction: not an echo of the request (small models repeat its
    examples: a line found in the request, such as a shown input, is not an instruction), at least four words, at
    most ``MAX_INSTRUCTION_CHARS``; a leading 'The better instruction is:' is dropped."""
    said = _words(request)
    for line in reply.splitlines():
        text = LEAD.sub("", line.strip()).strip().strip('"').strip()
        if len(text.split()) >= 4 and len(text) <= MAX_INSTRUCTION_CHARS and "{" not in text:
            if not text.lower().startswith(ECHOES) and _words(text) not in said:
                return text
    return None


def _words(text: str) -> str:
    """Lower-case words separated by single spaces (an echo differs from its source in spacing and case only)."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _short(text: str, chars: int = 200) -> str:
    return text if len(text) <= chars else text[:chars] + "..."


def shots_for(demos: dict[str, Any], ctx: LadderContext, train, texts: list[str]) -> list | None:
    """Per input, the demonstrations of ``demos``: none, a fixed set of train rows (in the recorded order), or the
    k most similar train rows (bm25, as the retrieved few-shot rung; a row never demonstrates itself)."""
    from tunegate.data import ROW

    if demos["source"] == "none":
        return None
    if demos["source"] == "retrieved":
        return _retrieved(demos["k"], ctx, train, texts).shots
    text_col, label_col = text_column(ctx), label_column(ctx)
    by_row = {r: (t, y) for r, t, y in train.select(ROW, text_col, label_col).iter_rows()}
    fixed = [(by_row[r][0], ctx.answer(by_row[r][1])) for r in demos["rows"] if r in by_row]
    return [fixed] * len(texts)


def _retrieved(k: int, ctx: LadderContext, train, texts: list[str]) -> Augment:
    """Per input, the k most similar train rows (bm25), as the retrieved few-shot rung finds them."""
    from tunegate.ladder.retrieved_few_shot.rung import RetrievedFewShot

    rung = Rung("optimized_prompt", kind="retrieved_few_shot", params={"k": k, "retriever": "bm25"})
    return RetrievedFewShot().augment(rung, ctx, train, texts)


def text_column(ctx: LadderContext) -> str:
    from tunegate.data import canonical_columns

    return canonical_columns(ctx.task)[0]


def label_column(ctx: LadderContext) -> str:
    from tunegate.data import canonical_columns

    return canonical_columns(ctx.task)[1]
