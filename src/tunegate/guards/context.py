"""What a guard measures with: the run's rows and results, the base model and the candidate (loaded once, on first
use), a way to answer inputs as the run does, and the per-base-model cache of the base side.

The base side of a probe depends only on the base model, the precision and the probe's rows, so it is scored once
per base model and probe set and kept under ``<cache>/guards/<model sha>/`` (``TUNEGATE_CACHE``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from tunegate.answering import AnswerSpec
from tunegate.provenance import sha256_json
from tunegate.records import DatasetRef, EvalResult, TuneResult


@dataclass
class GuardContext:
    """One run's guards: the run's answer spec, data and results, and the models, each loaded on first use."""

    spec: AnswerSpec
    metric: str
    model_path: str
    model_sha: str
    precision: str  # "cpu/float32": the base side's cache is per precision
    dataset: DatasetRef
    tuned: TuneResult
    tuned_eval: EvalResult
    baselines: list[EvalResult]
    run_dir: Path
    config_dir: Path
    alpha: float = 0.05  # the gate's: every guard's CI is at 1 - alpha (slices: divided by their number)
    power: float = 0.8
    resamples: int = 2000
    seed: int = 0
    slice_columns: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def tokenizer(self):
        from tunegate.modeling import load_tokenizer

        return self._once("tokenizer", lambda: load_tokenizer(self.model_path))

    def base_answerer(self):
        """The base model, answering as the zero-shot rung does."""
        from tunegate.modeling import load_model
        from tunegate.scoring import LMAnswerer

        return self._once("base", lambda: LMAnswerer(load_model(self.model_path)))

    def candidate(self):
        """The tuned artifact, loaded as it is served."""
        from tunegate.methods import get_method

        method = get_method(self.tuned.method)
        return self._once(
            "candidate",
            lambda: method.load_for_inference(base_path=self.model_path, artifact_dir=Path(self.tuned.artifact_dir)),
        )

    def candidate_lm(self):
        """(the candidate's causal LM, its soft prompt or None), or None when it is not a language model (a
        classification head answers, the base model's weights unchanged)."""
        from tunegate.scoring import LMAnswerer

        c = self.candidate()
        return (c.lm, c.prefix_embeds) if isinstance(c, LMAnswerer) else None

    def eval_frame(self):
        import polars as pl

        return self._once("eval", lambda: pl.read_parquet(self.dataset.eval_path))

    def answers(self, answerer, texts: list[str], *, max_new_tokens: int | None = None, desc: str) -> list[str]:
        """``texts`` answered the way the run answers (zero-shot prompt, the task's answer kind)."""
        from tunegate.answering import answer, prompt_ids

        spec = self.spec if max_new_tokens is None else replace(self.spec, max_new_tokens=max_new_tokens)
        tok = self.tokenizer()
        ids = prompt_ids(spec, tok, texts)
        fallback = self.dataset.train_mean if self.dataset.train_mean is not None else 0.0
        return answer(answerer, tok, spec, ids, fallback=fallback, desc=desc).predictions

    def base_side(self, what: str, payload: Any, compute: Callable[[], Any]) -> Any:
        """The base model's result for ``payload`` (JSON-able), computed once per base model, precision and
        payload, then read from the cache."""
        if self.cache_dir is None:
            return compute()
        key = sha256_json({"what": what, "precision": self.precision, "payload": payload})[:24]
        path = Path(self.cache_dir) / self.model_sha[:16] / f"{what}-{key}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())["value"]
            except (ValueError, KeyError):
                pass  # a damaged cache entry is computed again
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"what": what, "value": value}))
        os.replace(tmp, path)
        return value

    @functools.cached_property
    def best(self) -> EvalResult:
        from tunegate.selection import best_baseline

        return best_baseline(self.baselines, self.metric)
