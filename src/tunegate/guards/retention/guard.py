"""Retention (forgetting): does the candidate still do what the base model could?

Three sources, each base vs candidate on the same rows:

- the general probes shipped with the package (``probes``: PIQA, two solutions per goal; the model's choice is
  the solution with the higher per-token log-likelihood after "Question: <goal>\\nAnswer:", the goal computed
  once for both, as the ladder's scorer shares a prompt);
- other tunegate dataset configs (``datasets``): their eval rows answered with their own prompt and labels,
  judged on their gate metric (what the model must still do, e.g. the task of a previous tuning);
- a label-free measure (``kl``): the mean KL divergence of the candidate's next-token distribution from the
  base's on neutral text (the right solutions of PIQA goals), in nats.
"""

from __future__ import annotations

from pathlib import Path

from tunegate.guards.base import Guard, Measured, Rows, row_scores, row_unit
from tunegate.guards.probes import probe_rows
from tunegate.guards.retention.settings import RetentionSettings


def _choice_rows(ctx, name: str, limit: int | None):
    """The probe's rows as the tree scorer takes them (the goal once, then its two solutions), and which is right."""
    tok = ctx.tokenizer()
    rows = probe_rows(name)[:limit] if limit else probe_rows(name)
    tree, labels = [], []
    for r in rows:
        prompt = tok(f"Question: {r['goal']}\nAnswer:")["input_ids"]
        tree.append((prompt, [tok(" " + sol, add_special_tokens=False)["input_ids"] for sol in (r["sol1"], r["sol2"])]))
        labels.append(int(r["label"]))
    return tree, labels


def _choices_correct(scored: list, labels: list[int]) -> list[float]:
    """1.0 where the per-token log-likelihood of the right solution is the higher."""
    out = []
    for (_, parts), y in zip(scored, labels):
        per_token = [total / max(n, 1) for total, n in parts]
        out.append(float((per_token[1] > per_token[0]) == bool(y)))
    return out


class Retention(Guard):
    def preflight(self, settings: RetentionSettings, config_dir: Path) -> list[str]:
        from tunegate.config import load_config
        from tunegate.errors import TunegateError

        out = []
        for path in settings.datasets:
            where = path if path.is_absolute() else config_dir / path
            if not where.is_file():
                out.append(f"guards.retention.datasets: {where} does not exist; give the path of a tunegate config")
                continue
            try:
                load_config(where)
            except (TunegateError, ValueError) as exc:
                out.append(f"guards.retention.datasets: {where} is not a valid tunegate config: {exc}")
        return out

    def measure(self, settings: RetentionSettings, ctx) -> Measured:
        from tunegate.guards.likelihood import mean_kl, tree_logprobs

        lm = ctx.candidate_lm()
        if lm is None:
            return Measured(
                not_measured=f"{ctx.tuned.method} answers with a head on the frozen base model, whose weights it "
                "leaves unchanged: there is nothing it could forget"
            )
        cand, prefix = lm
        pad = ctx.tokenizer().pad_token_id
        out = Measured()
        for name in settings.probes:
            tree, labels = _choice_rows(ctx, name, settings.rows)

            def score(model, pre=None, desc=f"probe {name}"):
                return _choices_correct(tree_logprobs(model, tree, pad_id=pad, prefix=pre, desc=desc), labels)

            base = ctx.base_side(f"probe-{name}", tree, lambda: score(ctx.base_answerer().lm, desc=f"base {name}"))
            out.rows.append(
                Rows(name, "accuracy", True, base, score(cand, prefix, f"candidate {name}"), settings.max_drop)
            )
        for path in settings.datasets:
            out.rows.append(_dataset_rows(ctx, path, settings.max_drop))
        if settings.kl:
            tok = ctx.tokenizer()
            texts = [f"{r['goal']} {r['sol1'] if int(r['label']) == 0 else r['sol2']}" for r in probe_rows("piqa")]
            seqs = [tok(t)["input_ids"][:64] for t in texts[: settings.kl_rows]]
            kl = mean_kl(cand, ctx.base_answerer().lm, seqs, pad_id=pad, prefix=prefix, desc="KL from the base")
            out.rows.append(
                Rows("KL on neutral text", "nats", False, [0.0] * len(kl), kl, settings.max_kl, note="base: 0")
            )
        return out


def _dataset_rows(ctx, path: Path, max_drop: float) -> Rows:
    """Another tunegate config's eval rows, answered by the base model and the candidate with that config's prompt,
    labels and gate metric."""
    from tunegate.answering import AnswerSpec, answer, prompt_ids
    from tunegate.config import load_config
    from tunegate.data import canonical_columns
    from tunegate.errors import ConfigError
    from tunegate.modeling import context_length
    from tunegate.validation import resolved_settings, validate

    where = path if path.is_absolute() else ctx.config_dir / path
    cfg = load_config(where)
    tok = ctx.tokenizer()
    outcome = validate(cfg, tok, context_length(ctx.model_path))
    if not outcome.ok:
        raise ConfigError(
            f"guards.retention.datasets: {where} has data errors ({len(outcome.errors)}); run `tunegate validate "
            f"{where}` to see them"
        )
    spec = AnswerSpec.from_config(cfg.with_resolved(resolved_settings(cfg, outcome)))
    text_col, label_col = canonical_columns(spec.task)
    texts = outcome.eval.get_column(text_col).to_list()
    refs = outcome.eval.get_column(label_col).to_list()
    ids = prompt_ids(spec, tok, texts)
    metric = cfg.gate_metric

    def scores(answerer, desc) -> list[float]:
        preds = answer(answerer, tok, spec, ids, fallback=0.0, desc=desc).predictions
        return row_scores(spec.task, metric, preds, refs)[1]

    payload = {"config": str(where), "ids": ids, "refs": [str(r) for r in refs], "metric": metric}
    base = ctx.base_side("dataset", payload, lambda: scores(ctx.base_answerer(), f"base {where.stem}"))
    return Rows(
        f"{where.parent.name}/{where.name}",
        row_unit(spec.task, metric),
        True,
        base,
        scores(ctx.candidate(), f"candidate {where.stem}"),
        max_drop,
    )
